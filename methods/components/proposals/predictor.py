"""MaskFormer's zero-shot transformer predictor (METHOD_SPEC 1).

res5 -> 1x1 conv to `hidden`; DETR decoder (0 encoder layers, post-norm, q/k get position encodings, queries
start at zero with learned query positions, intermediate outputs through a shared LayerNorm); per decoder
layer: class embedding MLP hidden -> embed_hidden -> embed_dim and mask embedding MLP (3 layers) dotted with the
stride-4 mask features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MaskFormerConfig
from .pixel_decoder import c2_xavier_fill
from .position import sine_position_encoding


class MLP(nn.Module):
    """DETR's MLP: `num_layers` linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DetrDecoderLayer(nn.Module):
    """DETR's post-norm decoder layer; unlike nn.TransformerDecoderLayer it adds the position encodings to the
    queries and keys (not the values) of both attentions. Tensors are batch-first (B, L, D)."""

    def __init__(self, d_model: int, nheads: int, dim_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt, need_weights=False)[0]))
        attended = self.cross_attn(tgt + query_pos, memory + pos, memory, need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout2(attended))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(ffn))


def xavier_init_(module: nn.Module) -> None:
    """DETR `Transformer._reset_parameters`: xavier-uniform on every parameter with more than one dim."""
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class TransformerPredictor(nn.Module):
    """(res5, mask_features) -> per-layer class embeddings (L,B,Q,E) and mask logits (L,B,Q,H/4,W/4)."""

    def __init__(self, cfg: MaskFormerConfig, in_channels: int):
        super().__init__()
        self.input_proj = nn.Conv2d(in_channels, cfg.hidden, 1)
        c2_xavier_fill(self.input_proj)
        self.layers = nn.ModuleList(
            DetrDecoderLayer(cfg.hidden, cfg.nheads, cfg.dim_ff, cfg.dropout) for _ in range(cfg.dec_layers)
        )
        self.decoder_norm = nn.LayerNorm(cfg.hidden)
        xavier_init_(self.layers)
        self.query_embed = nn.Embedding(cfg.num_queries, cfg.hidden)
        self.class_embed = MLP(cfg.hidden, cfg.embed_hidden, cfg.embed_dim, cfg.embed_layers)
        self.mask_embed = MLP(cfg.hidden, cfg.hidden, cfg.mask_dim, cfg.mask_layers)
        self.hidden = cfg.hidden

    def forward(self, res5: torch.Tensor, mask_features: torch.Tensor,
                all_layers: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``all_layers`` False: only the last layer's outputs (L=1), which inference needs; the earlier layers'
        outputs serve deep supervision alone, and their mask einsum is 5/6 of this head's cost at 512x704."""
        b, _, h, w = res5.shape
        pos = sine_position_encoding(b, h, w, self.hidden // 2, device=res5.device)
        memory = self.input_proj(res5).flatten(2).transpose(1, 2)  # (B, HW, D)
        pos = pos.to(memory.dtype).flatten(2).transpose(1, 2)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        tgt = torch.zeros_like(query_pos, dtype=memory.dtype)
        states = []
        for i, layer in enumerate(self.layers):
            tgt = layer(tgt, memory, pos, query_pos)
            if all_layers or i == len(self.layers) - 1:
                states.append(self.decoder_norm(tgt))
        hs = torch.stack(states)  # (L, B, Q, D)
        embeddings = self.class_embed(hs)
        masks = torch.einsum("lbqc,bchw->lbqhw", self.mask_embed(hs), mask_features)
        return embeddings, masks
