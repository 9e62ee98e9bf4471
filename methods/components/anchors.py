"""Classification Anchor Learning (CAL): heatmap decoders and the pooling of CLIP features per proposal.

Query-based decoder (paper Eq. 3, METHOD_SPEC 6): K standard DETR post-norm decoder layers (unmasked cross-attn)
then a heatmap output layer: self-attn -> add&LN, then per head H_n(l) = softmax_l(q_n . k_l / sqrt(d_head)) *
P_n(l) with q = W_q(tgt + query_pos), k = W_k(F_V + pos); values are the raw CLIP features (no W_v), no output
projection, no residual, no FFN; pooled = sum_l H_n(l) F_V(l), heads concatenated, L2-normalised.
Conv-based decoder (paper Eq. 4): H = softmax(conv(CBR_K(...CBR_1(F * M)))), and the released bytecode's
variant (METHOD_SPEC 6). `mask_pooling` is the CAL-less baseline's pooling (METHOD_SPEC 12.17).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError

from .proposals.position import sine_position_encoding
from .proposals.predictor import DetrDecoderLayer, xavier_init_


def l2_normalise(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """x / max(||x||, eps) over the last dim, computed in fp32 (a 1e-10 clamp underflows in fp16)."""
    xf = x.float()
    return (xf / xf.norm(dim=-1, keepdim=True).clamp_min(eps)).to(x.dtype)


def masks_to_grid(mask_logits: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """(B,N,h,w) MaskFormer mask logits -> (B,N,gh,gw) probabilities: sigmoid, then bilinear resize
    (align_corners False) to the CLIP patch grid (METHOD_SPEC 6: sigmoid before resizing for CAL)."""
    return F.interpolate(mask_logits.float().sigmoid(), size=grid_size, mode="bilinear", align_corners=False)


def mask_pooling(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(B,D,gh,gw) features, (B,N,gh,gw) mask probabilities -> (B,N,D) = L2norm(sum_l P_n(l) F(l))."""
    pooled = torch.einsum("bnl,bdl->bnd", masks.flatten(2).to(features.dtype), features.flatten(2))
    return l2_normalise(pooled)


def _check_inputs(features: torch.Tensor, masks: torch.Tensor) -> None:
    if features.dim() != 4 or masks.dim() != 4 or masks.shape[0] != features.shape[0] \
            or masks.shape[-2:] != features.shape[-2:]:
        raise ConfigError(
            f"CAL needs features (B,D,gh,gw) and masks (B,N,gh,gw) on the same grid; got {tuple(features.shape)} "
            f"and {tuple(masks.shape)}. Bring the mask logits to the CLIP grid with masks_to_grid first."
        )


class HeatmapOutputLayer(nn.Module):
    """The heatmap output layer of Eq. 3: returns (pooled (B,N,D) L2-normalised, heatmaps (B,heads,N,L))."""

    def __init__(self, d_model: int, nheads: int, dropout: float = 0.1):
        super().__init__()
        if d_model % nheads:
            raise ConfigError(f"CAL d_model={d_model} must be divisible by nheads={nheads}.")
        self.nheads = nheads
        self.self_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.attn_dropout = nn.Dropout(dropout)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor,
                masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = tgt.shape
        h, hd = self.nheads, d // self.nheads
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt, need_weights=False)[0]))
        q = (self.q_proj(tgt + query_pos) * hd**-0.5).view(b, n, h, hd).transpose(1, 2)
        k = self.k_proj(memory + pos).view(b, -1, h, hd).transpose(1, 2)
        v = memory.view(b, -1, h, hd).transpose(1, 2)  # raw CLIP features: no W_v (METHOD_SPEC 6)
        attn = self.attn_dropout((q @ k.transpose(-1, -2)).float().softmax(-1))
        heat = attn * masks[:, None].float()  # same mask for every head, no renormalisation
        pooled = (heat.to(v.dtype) @ v).transpose(1, 2).reshape(b, n, d)
        return l2_normalise(pooled), heat


class QueryHeatmapDecoder(nn.Module):
    """Query-based CAL. `forward(features (B,D,gh,gw) L2-normalised CLIP features, masks (B,N,gh,gw)
    probabilities)` -> (pooled (B,N,D) L2-normalised, heatmaps (B,N,gh,gw) averaged over heads).

    N must equal num_queries: anchor query n belongs to proposal n. Queries start at zero with learned query
    positions (nn.Embedding, N(0,1) init); positions of the grid are the normalised sine encoding with D/2
    features per axis. Layers are xavier-initialised as DETR's transformer.
    """

    def __init__(self, d_model: int = 512, nheads: int = 8, dim_ff: int = 1024, num_layers: int = 1,
                 num_queries: int = 100, dropout: float = 0.1):
        super().__init__()
        if num_layers < 0 or d_model % 2:
            raise ConfigError(f"CAL needs num_layers >= 0 and an even d_model; got {num_layers}, {d_model}.")
        self.num_queries = num_queries
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.layers = nn.ModuleList(DetrDecoderLayer(d_model, nheads, dim_ff, dropout) for _ in range(num_layers))
        self.out_layer = HeatmapOutputLayer(d_model, nheads, dropout)
        xavier_init_(self.layers)
        xavier_init_(self.out_layer)

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(features, masks)
        b, d, gh, gw = features.shape
        if masks.shape[1] != self.num_queries:
            raise ConfigError(
                f"QueryHeatmapDecoder has {self.num_queries} anchor queries but got {masks.shape[1]} masks; "
                "the proposal network's num_queries and CAL's num_queries must agree."
            )
        memory = features.flatten(2).transpose(1, 2)
        pos = sine_position_encoding(b, gh, gw, d // 2, device=features.device)
        pos = pos.to(memory.dtype).flatten(2).transpose(1, 2)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        tgt = torch.zeros_like(query_pos, dtype=memory.dtype)
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
        pooled, heat = self.out_layer(tgt, memory, pos, query_pos, masks.flatten(2))
        return pooled, heat.mean(1).view(b, -1, gh, gw)


class ConvHeatmapDecoder(nn.Module):
    """Conv-based CAL. Same inputs and outputs as `QueryHeatmapDecoder`.

    variant "paper" (Eq. 4): X_n = F * M_n -> K x (3x3 conv d->d, BN, ReLU) -> 3x3 conv d->1 -> activation over
    the gh*gw positions (softmax by default); pooled = sum_l H_n(l) F(l), L2-normalised.
    variant "released" (DeOP bytecode `..._maskvit_convdecoder`): one 3x3 conv d->1 with replicate padding and
    no bias (its ModuleList repeats one conv applied to the same input, so K > 1 equals K = 1 and `num_layers`
    is ignored), sigmoid by default, pooled over the unmasked F and *not* normalised.
    """

    def __init__(self, d: int = 512, num_layers: int = 3, activation: Literal["softmax", "sigmoid"] | None = None,
                 variant: Literal["paper", "released"] = "paper"):
        super().__init__()
        if variant not in ("paper", "released"):
            raise ConfigError(f"ConvHeatmapDecoder variant must be 'paper' or 'released', got {variant!r}.")
        activation = activation or ("softmax" if variant == "paper" else "sigmoid")
        if activation not in ("softmax", "sigmoid"):
            raise ConfigError(f"ConvHeatmapDecoder activation must be 'softmax' or 'sigmoid', got {activation!r}.")
        self.variant = variant
        self.activation = activation
        blocks: list[nn.Module] = []
        if variant == "paper":
            for _ in range(num_layers):
                blocks += [nn.Conv2d(d, d, 3, padding=1, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True)]
            self.head = nn.Conv2d(d, 1, 3, padding=1)
        else:
            self.head = nn.Conv2d(d, 1, 3, padding=1, padding_mode="replicate", bias=False)
        self.blocks = nn.Sequential(*blocks)

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(features, masks)
        b, d, gh, gw = features.shape
        n = masks.shape[1]
        weighted = (features[:, None] * masks[:, :, None].to(features.dtype)).flatten(0, 1)  # (B*N, D, gh, gw)
        logits = self.head(self.blocks(weighted)).view(b, n, gh * gw).float()
        heat = logits.softmax(-1) if self.activation == "softmax" else logits.sigmoid()
        pooled = torch.einsum("bnl,bdl->bnd", heat.to(features.dtype), features.flatten(2))
        if self.variant == "paper":
            pooled = l2_normalise(pooled)
        return pooled, heat.view(b, n, gh, gw)
