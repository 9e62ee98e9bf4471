"""The speed task's throughput mode (``mode: throughput``): batches of same-size images, beside bs-1 latency.

Latency (``mode: latency``, batch 1) is what the paper's FPS columns report. Throughput feeds ``batch_size``
images of one size per call (the first of ``image_sizes``; prepared COCO-Stuff images are resized to it), so
that a method's compute cost shows rather than its per-call overhead: the per-image figures of the record are
the batch time divided by the batch size, and its ``peak_percent`` reads the same FLOPs against the same peak.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError

MODES = ("latency", "throughput")


def check_mode(opts: dict[str, Any]) -> None:
    """``mode`` and ``batch_size`` agree: latency is batch 1, throughput a batch of two or more."""
    if opts["mode"] not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {opts['mode']!r}.")
    if opts["mode"] == "latency" and opts["batch_size"] != 1:
        raise ConfigError(f"batch_size {opts['batch_size']} with mode: latency (batch 1); for batches of same-size "
                          "images set mode: throughput.")
    if opts["mode"] == "throughput" and opts["batch_size"] < 2:
        raise ConfigError(f"mode: throughput needs batch_size >= 2 (e.g. 8 or 32), got {opts['batch_size']}.")


def images_needed(opts: dict[str, Any]) -> int:
    """Throughput: at least one full batch of distinct images; latency: ``images``."""
    return max(opts["images"], opts["batch_size"]) if opts["mode"] == "throughput" else opts["images"]


def same_size(images: list[torch.Tensor], size: tuple[int, int]) -> list[torch.Tensor]:
    """uint8 (3,H,W) images -> the same images bilinearly resized to ``size`` (those already of that size kept)."""
    out = []
    for im in images:
        if tuple(im.shape[-2:]) != tuple(size):
            im = F.interpolate(im[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]
            im = im.round().clamp(0, 255).to(torch.uint8)
        out.append(im)
    return out
