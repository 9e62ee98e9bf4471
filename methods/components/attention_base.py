"""What every attention rule is built on: the `AttnRule` base class, the `ATTENTION_RULES` table it registers in,
and the per-head projections of an open_clip block. The rules themselves live in `attention_rules` (the
table every caller reads, DeOP's rules and the block runner) and `training_free_rules` (the training-free
family's last blocks); both import this module, so neither imports the other's rules back."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from harness.parts import Part, part_table, register_part

# The rules are the parts of kind "attention" (harness.parts): this is that kind's shared table.
ATTENTION_RULES: dict[str, type[AttnRule]] = part_table("attention")  # type: ignore[assignment]


def register_rule(cls: type[AttnRule]) -> type[AttnRule]:
    """Class decorator: add ``cls`` to `ATTENTION_RULES` under ``cls.name`` (a name taken twice is an error)."""
    return register_part(cls)


# ----------------------------------------------------------------------------------------------- projections


def split_heads(t: Tensor, heads: int) -> Tensor:
    """(B, T, C) -> (B, heads, T, C / heads)."""
    b, n, c = t.shape
    return t.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(t: Tensor) -> Tensor:
    """(B, heads, T, d) -> (B, T, heads * d): the inverse of `split_heads`."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def project_v(attn: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """The value projection of an open_clip block's attention for x (B, T, C)."""
    c = attn.embed_dim
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * c:]
    return F.linear(x, attn.in_proj_weight[2 * c:], bias)


def project_qkv(attn: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The query, key and value projections (each (B, T, C)) of an open_clip block's attention."""
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return q, k, v


def softmax_attention(attn: nn.MultiheadAttention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(QK^T/sqrt(d)) V per head, never materialising the matrix where a fused kernel exists."""
    h = attn.num_heads
    out = F.scaled_dot_product_attention(split_heads(q, h), split_heads(k, h), split_heads(v, h))
    return merge_heads(out)


# The names the in-tree rules were written with; plugin authors use the public ones above.
_split_heads, _merge_heads, _project_v, _project_qkv = split_heads, merge_heads, project_v, project_qkv
_softmax_attention = softmax_attention


def vanilla_attention(attn: nn.MultiheadAttention, x: Tensor) -> Tensor:
    """The explicit softmax(Q K^T / sqrt(d_head)) of each head for x (T, C): (heads, T, T)."""
    q, k, _ = _project_qkv(attn, x[None])
    heads = attn.num_heads
    q, k = _split_heads(q, heads)[0], _split_heads(k, heads)[0]
    return (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)


def apply_attention(attn: nn.MultiheadAttention, x: Tensor, matrix: Tensor) -> Tensor:
    """out_proj(matrix_h V_h) for x (T, C) and per-head matrices (heads, T, T): what a rule's ``mix`` computes,
    written the slow explicit way (tests compare the two)."""
    v = _split_heads(_project_v(attn, x[None]), attn.num_heads)[0]
    return attn.out_proj(_merge_heads((matrix.to(v.dtype) @ v)[None]))[0]


# ----------------------------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class AttnRule(Part, ABC):
    """How a block mixes its tokens. `mix` gets ln_1(x) (B, T, C) and returns the attention branch output
    (after out_proj), before LayerScale and the residual sum; `masks` (B, T, N) are the proposal masks as
    probabilities on the token grid with a row of ones for CLS (only for rules with `needs_masks`)."""

    kind: ClassVar[str] = "attention"
    needs_masks: ClassVar[bool] = False
    # What `mix`/`attention` need besides the block input, passed as keywords: "grid" (the patch grid) or "proxy"
    # (a foundation model's patch features). Only the training-free pipeline provides them; `ps` offers the rest.
    context: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor: ...

    @abstractmethod
    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        """The explicit matrix ``mix`` applies to the values, per head: x (T, C), masks (T, N) -> (heads, T, T);
        ``mix(x[None], attn, masks[None])[0] == apply_attention(attn, x, attention(x, attn, masks))``."""

    @classmethod
    def place(cls, spec: Any) -> dict[int, AttnRule]:
        """Block index (negative: from the end) -> instance, for a method spec. Default: the last block, with
        the rule's options from the spec's ``extra_options`` (an out-of-tree rule's own options)."""
        own = set(cls.option_names())
        given = {k: v for k, v in dict(getattr(spec, "extra_options", {}) or {}).items() if k in own}
        return {-1: cls.from_options(given, where=f"part attention {cls.name!r}: ")}

