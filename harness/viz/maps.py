"""What an attention figure shows, as plain data (computed by `methods.tools.attention`, drawn by
`harness.viz.figures`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PatchMaps:
    """Maps of one chosen patch. Grid maps are (gh, gw) over the CLIP patches that cover the image."""

    xy: tuple[int, int]  # the chosen pixel (x, y) in the image
    cell: tuple[int, int]  # its patch (row, col)
    class_index: int  # the class predicted at the patch
    proposal: int  # the proposal containing it (see the module docstring)
    vanilla: np.ndarray  # attention of the patch over the patches, without severance
    vanilla_cls: float  # attention of the patch on the CLS token (the rest of the row)
    severed: np.ndarray | None  # the same row under the method's last-block rule (None: the method has none)
    mask: np.ndarray  # (H, W) the proposal's sigmoid mask at image size
    heatmap: np.ndarray  # the proposal's CAL heatmap (or mask-pooling weights) on the grid


@dataclass
class AttentionMaps:
    image: np.ndarray  # (H, W, 3) uint8
    class_names: list[str]
    cell_size: tuple[float, float]  # one CLIP patch in image pixels (height, width)
    severance: str  # the last block's rule, in words
    heatmap_kind: str
    patches: list[PatchMaps]
