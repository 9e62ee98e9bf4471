"""Training targets from a semantic label map ([S] `mask_former_semantic_dataset_mapper.py` L176-200)."""

from __future__ import annotations

import torch


def targets_from_semantic(label: torch.Tensor, ignore: int = 255) -> dict[str, torch.Tensor]:
    """(H,W) integer label map -> dict(labels (T,) int64 ascending, masks (T,H,W) bool): one binary mask per
    class present, the ignore value excluded (its pixels belong to no mask)."""
    if label.dim() != 2:
        raise ValueError(f"label must be (H, W), got shape {tuple(label.shape)}")
    classes = torch.unique(label)
    classes = classes[classes != ignore].to(torch.int64)
    masks = label[None] == classes.to(label.dtype)[:, None, None]
    return {"labels": classes, "masks": masks}
