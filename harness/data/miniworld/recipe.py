"""The pretraining recipe of MiniWorld's CLIP as plain data (importable without torch, e.g. for CLI help)."""

from __future__ import annotations

from dataclasses import dataclass

ARCH = "miniworld-vit-p8"  # methods.components.weights.TINY_ARCHS


@dataclass(frozen=True)
class PretrainConfig:
    """Every field goes into the training record. 1,500 steps of 128 pairs: about half an hour on 2 cores."""

    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 100
    clip_grad_norm: float = 1.0
    image_size: int = 64
    seed: int = 0
    arch: str = ARCH
    checkpoint_every: int = 100
    log_every: int = 10
    compile: bool = True  # torch.compile the loss (same maths, several times faster on a CPU)
