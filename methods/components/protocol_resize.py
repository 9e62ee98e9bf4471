"""How CLIP's positional grid and the input image are resized: DeOP's way and the training-free repositories'.

Two fidelity details (NEXT_METHODS_SPEC, "Two fidelity details"), each a recorded option of the dense pipeline
(`pos_interp` is also the one trunk's, `clip_trunk.CLIPTrunk`: DeOP's `DenseCLIP` uses "size"):

- `pos_interp`: "scale-factor" is what SCLIP (wangf3014/SCLIP @b56bd30 clip/model.py L263-281), NACLIP
  (sinahmr/NACLIP @0cac3a6 clip/model.py L134-150), ClearCLIP (mc-lan/ClearCLIP @ad68a40 open_clip/transformer.py
  L569-587) and ProxyCLIP (mc-lan/ProxyCLIP @e7b767f open_clip/transformer.py L540-558) do: the native n0 x n0 grid
  of patch rows goes through bicubic `F.interpolate` with `scale_factor = (g + 0.1) / n0` per side (align_corners
  False), so torch samples source position (i + 0.5) * n0 / (g + 0.1) - 0.5, not (i + 0.5) * n0 / g - 0.5; the
  output has floor(g + 0.1) = g cells. Their forward interpolates only when the token count differs from the
  table's, so a window with n0 * n0 patches in another shape keeps the table as it is (replicated here).
  "size" resizes to the target grid (DeOP's official code, `resample_token_table`, which resizes DeOP's prompt
  tables too).
- `resize`: "cv2" is mmseg's `Resize(keep_ratio=True)` (mmcv `imrescale`, backend cv2): `cv2.resize` with
  INTER_LINEAR on the uint8 image, whose result is uint8 (rounded); "torch" is bilinear `F.interpolate` on floats.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import ConfigError

POS_INTERPS = ("scale-factor", "size")
RESIZES = ("cv2", "torch")


def resample_token_table(table: Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> Tensor:
    """(1 + src_h*src_w, C) -> (1 + dst_h*dst_w, C): CLS row kept, patch rows resized bicubically
    (F.interpolate defaults, align_corners=False), as the official DeOP code resizes CLIP's positional embedding
    and its learned prompt tables (METHOD_SPEC 4.2-4.4)."""
    if tuple(src_grid) == tuple(dst_grid):
        return table
    width = table.shape[-1]
    patches = table[1:].reshape(1, src_grid[0], src_grid[1], width).permute(0, 3, 1, 2)
    work_dtype = torch.promote_types(table.dtype, torch.float32)  # bicubic in at least fp32
    patches = F.interpolate(patches.to(work_dtype), size=dst_grid, mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(-1, width).to(table.dtype)
    return torch.cat([table[:1], patches], dim=0)


def resample_positions(table: Tensor, native_grid: tuple[int, int], grid: tuple[int, int],
                       pos_interp: str) -> Tensor:
    """(1 + n0h*n0w, C) positional table -> (1 + gh*gw, C) for a `grid` input, CLS row kept (module docstring)."""
    if pos_interp == "size":
        return resample_token_table(table, native_grid, grid)
    if pos_interp != "scale-factor":
        raise ConfigError(f"option pos_interp={pos_interp!r} is not one of {', '.join(POS_INTERPS)}.")
    if grid[0] * grid[1] == table.shape[0] - 1:
        return table  # the repos check the token count only (see the module docstring)
    width = table.shape[-1]
    patches = table[1:].reshape(1, native_grid[0], native_grid[1], width).permute(0, 3, 1, 2)
    work_dtype = torch.promote_types(table.dtype, torch.float32)
    scale = ((grid[0] + 0.1) / native_grid[0], (grid[1] + 0.1) / native_grid[1])
    patches = F.interpolate(patches.to(work_dtype), scale_factor=scale, mode="bicubic", align_corners=False,
                            recompute_scale_factor=False)
    if tuple(patches.shape[-2:]) != tuple(grid):  # the repos assert the same
        raise ValueError(f"scale-factor interpolation gave grid {tuple(patches.shape[-2:])}, expected {grid}")
    patches = patches.permute(0, 2, 3, 1).reshape(-1, width).to(table.dtype)
    return torch.cat([table[:1], patches], dim=0)


def resize_image(image: Tensor, size: tuple[int, int], backend: str) -> Tensor:
    """image (3, H, W) (uint8 from the datasets) -> (1, 3, h, w) float32 on the image's device.

    "cv2": `cv2.resize(HWC, (w, h), INTER_LINEAR)` on the CPU, in the image's own dtype (uint8: rounded, as
    mmseg); "torch": bilinear `F.interpolate` (align_corners False) on floats."""
    if backend == "torch":
        return F.interpolate(image.float()[None], size=size, mode="bilinear", align_corners=False)
    if backend != "cv2":
        raise ConfigError(f"option resize={backend!r} is not one of {', '.join(RESIZES)}.")
    import cv2  # heavy; only this backend needs it

    pixels = image.detach().cpu().permute(1, 2, 0).numpy()
    if pixels.dtype != np.uint8:
        pixels = pixels.astype(np.float32)
    out = cv2.resize(np.ascontiguousarray(pixels), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(out)).to(image.device).permute(2, 0, 1)[None].float()
