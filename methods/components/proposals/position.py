"""DETR's sine position encoding, normalised (MaskFormer predictor and DeOP's CAL, METHOD_SPEC 1 and 6)."""

from __future__ import annotations

import math

import torch


def sine_position_encoding(
    batch: int,
    height: int,
    width: int,
    num_pos_feats: int,
    *,
    temperature: float = 10000.0,
    normalize: bool = True,
    scale: float = 2 * math.pi,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(B, 2*num_pos_feats, H, W) encoding: y features first, then x, each interleaving sin/cos.

    Positions are the 1-based cumulative counts of an all-valid mask, divided by the last count (+1e-6) and
    scaled by 2*pi when `normalize` (MaskFormer's `PositionEmbeddingSine`); computed in fp32 always.
    """
    ones = torch.ones(batch, height, width, device=device, dtype=torch.float32)
    y_embed = ones.cumsum(1)
    x_embed = ones.cumsum(2)
    if normalize:
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
