"""Sliding-window and whole-image dense inference with mmseg's `slide_inference` semantics (TRAINING_FREE_SPEC 2).

Windows of `crop` pixels every `stride` pixels per axis: `n = max(H - crop + stride - 1, 0) // stride + 1`
windows; window i starts at `i * stride`, ends at `min(start + crop, H)`, and is then shifted back inside the image
(`start = max(end - crop, 0)`), so the last window ends at the border and an image smaller than the crop is one
window of the image's size (no padding). Each window's logits come back at the window's size; they are summed
into the image and divided by the per-pixel window count.

`pad_to` (ClearCLIP pads to the patch size, ProxyCLIP to 56) pads a window whose side is not a multiple of it,
symmetrically with zeros (in normalised space, as those repos pad the normalised tensor: `l = pad // 2`) and
crops the padding back off the window's logits. Windows of the same padded size run as one batch: exact,
because windows never see each other (the batch size only groups rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import ConfigError

WindowFn = Callable[[Tensor], Tensor]  # (B, 3, h, w) normalised windows -> (B, Q, h, w) logits at window size


@dataclass(frozen=True)
class Window:
    """One window: rows y1:y2, columns x1:x2 of the image."""

    y1: int
    y2: int
    x1: int
    x2: int


@dataclass(frozen=True)
class SlideConfig:
    """`mode` "slide" (crop/stride windows) or "whole" (one window, the image); `pad_to` 0 = no padding;
    `max_batch` bounds how many windows go through the model at once (memory), 0 = all of one size."""

    mode: str = "slide"
    crop: int = 224
    stride: int = 112
    pad_to: int = 0
    max_batch: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("slide", "whole"):
            raise ConfigError(f"inference mode must be 'slide' or 'whole', got {self.mode!r}.")
        for name in ("crop", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"sliding-window {name} must be an integer >= 1, got {value!r}.")
        for name in ("pad_to", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"sliding-window {name} must be an integer >= 0, got {value!r}.")
        if self.mode == "slide" and self.stride > self.crop:
            raise ConfigError(f"sliding-window stride {self.stride} exceeds the crop {self.crop}: pixels between "
                              "windows would get no prediction.")


def window_count(size: int, crop: int, stride: int) -> int:
    """mmseg's number of windows along an axis of `size` pixels."""
    return max(size - crop + stride - 1, 0) // stride + 1


def windows(height: int, width: int, cfg: SlideConfig) -> list[Window]:
    """The windows covering an image, row-major (the order of mmseg's double loop)."""
    if cfg.mode == "whole":
        return [Window(0, height, 0, width)]
    out = []
    for i in range(window_count(height, cfg.crop, cfg.stride)):
        for j in range(window_count(width, cfg.crop, cfg.stride)):
            y2, x2 = min(i * cfg.stride + cfg.crop, height), min(j * cfg.stride + cfg.crop, width)
            out.append(Window(max(y2 - cfg.crop, 0), y2, max(x2 - cfg.crop, 0), x2))
    return out


def symmetric_padding(height: int, width: int, multiple: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zeros that bring the sides to a multiple of `multiple`, as ProxyCLIP's
    `compute_padsize` (left/top get the smaller half)."""
    if multiple <= 1:
        return 0, 0, 0, 0
    lr, tb = (-width) % multiple, (-height) % multiple
    return lr // 2, lr - lr // 2, tb // 2, tb - tb // 2


def slide_logits(image: Tensor, fn: WindowFn, cfg: SlideConfig) -> tuple[Tensor, int]:
    """image (3, H, W) normalised -> (logits (Q, H, W) averaged over windows, number of windows).

    `fn` is called on batches of windows of one size; its logits must be at the window's (padded) size."""
    if image.dim() != 3:
        raise ValueError(f"slide_logits takes one (3, H, W) image, got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    boxes = windows(height, width, cfg)
    groups: dict[tuple[int, int], list[Window]] = {}
    for box in boxes:
        groups.setdefault((box.y2 - box.y1, box.x2 - box.x1), []).append(box)
    total: Tensor | None = None
    count = image.new_zeros((1, height, width))
    for (h, w), group in groups.items():
        pad = symmetric_padding(h, w, cfg.pad_to)
        step = cfg.max_batch or len(group)
        for start in range(0, len(group), step):
            part = group[start:start + step]
            crops = torch.stack([image[:, b.y1:b.y2, b.x1:b.x2] for b in part])
            if any(pad):
                crops = F.pad(crops, pad)
            logits = fn(crops)
            if any(pad):
                logits = logits[..., pad[2]:pad[2] + h, pad[0]:pad[0] + w]
            if total is None:
                total = logits.new_zeros((logits.shape[1], height, width))
            for b, window_logits in zip(part, logits):
                total[:, b.y1:b.y2, b.x1:b.x2] += window_logits
                count[:, b.y1:b.y2, b.x1:b.x2] += 1
    return total / count.to(total.dtype), len(boxes)
