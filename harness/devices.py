"""The ``--device`` option of every command, checked before any work: auto, cpu, cuda or cuda:N."""

from __future__ import annotations

import re

from .errors import ConfigError

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(device: str) -> str:
    if not _PATTERN.match(device):
        raise ConfigError(f"--device {device!r} is not a device this harness runs on; use auto, cpu, cuda or cuda:N.")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here; use --device cpu (or auto).")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    return device
