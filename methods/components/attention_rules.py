"""Attention rules: how a CLIP block mixes its tokens, one self-describing object per rule.

A rule is a frozen dataclass registered in `ATTENTION_RULES` under its ``name`` (the value of a method's `ps`
option). It knows
- ``description``: one line for ``harness list rules`` and the README;
- ``mix``: the fast path `DenseCLIP` runs (the attention branch of a block, after out_proj);
- ``attention``: its explicit per-head attention matrix, so that tests check ``mix`` against it and the attention
  figure (paper Figs. 5/8) draws it, whatever the rule;
- ``place``: which blocks get which instance, from a method spec (GPS: one alpha per block from the end);
- ``label``: how the figure names this instance (e.g. "GPS alpha=1").

A new rule is one class with ``@register_rule`` (see methods/README.md); `ps`'s choices, the figure and the
listing follow from the table. A rule with a softmax computes it through ``F.scaled_dot_product_attention``
(`_softmax_attention`, as `Vanilla`, `GPS` and `MPS` do): a fused kernel that never materialises the T x T
matrix where one exists, the same kernel for every method (issue 17), and one the speed task's FLOP counter sees.
Every block, with a rule or without, runs through `run_block`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import Tensor, nn

from harness.parts import find_part, option, part_aliases

from .attention_base import (  # noqa: F401 - re-exported: callers read the whole table from this module
    ATTENTION_RULES,
    AttnRule,
    _merge_heads,
    _project_qkv,
    _project_v,
    _softmax_attention,
    _split_heads,
    apply_attention,
    merge_heads,
    project_qkv,
    project_v,
    register_rule,
    softmax_attention,
    split_heads,
    vanilla_attention,
)


def rule_descriptions() -> list[tuple[str, str]]:
    """(name, description) of every registered rule, for ``harness list rules`` (TOOLS: "attention-rules")."""
    return [(name, cls.description) for name, cls in ATTENTION_RULES.items()]


# The training-free family's names of two table rules (its `attention` option and DeOP's `ps` name the same
# rules; either name is accepted by both and kept as written in the record).
RULE_ALIASES = part_aliases("attention")
RULE_ALIASES.update({"qk": "none", "identity": "gps"})


def rule_class(name: str, option: str = "ps") -> type[AttnRule]:
    """The registered rule ``name`` (or an alias of one); a `ConfigError` naming ``option`` otherwise."""
    return find_part("attention", name, option=option)  # type: ignore[return-value]


def rule_names(*, needs_context: bool | None = None, needs_masks: bool | None = None) -> tuple[str, ...]:
    """The registered rules' names, optionally only those that do (not) need context / proposal masks."""
    return tuple(n for n, r in ATTENTION_RULES.items()
                 if (needs_context is None or bool(r.context) == needs_context)
                 and (needs_masks is None or r.needs_masks == needs_masks))


def rules_for(ps: str, spec: Any) -> dict[int, AttnRule]:
    """Block index (from the end) -> rule instance, for a spec whose `ps` names a registered rule."""
    return rule_class(ps).place(spec)



# ----------------------------------------------------------------------------------------------- the rules


@register_rule
@dataclass(frozen=True)
class Vanilla(AttnRule):
    """CLIP's own multi-head self-attention, through ``F.scaled_dot_product_attention`` (the matrix is never
    materialised where a fused kernel exists). As the `ps: none` entry it places no rule at all; every block
    without a rule runs this one (`run_block`): the numbers of an unmodified CLIP to float tolerance."""

    name: ClassVar[str] = "none"
    description: ClassVar[str] = "no severance: CLIP's own softmax(QK^T/sqrt(d)) attention in every block"

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        return attn.out_proj(_softmax_attention(attn, *_project_qkv(attn, x)))

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        return vanilla_attention(attn, x)

    @classmethod
    def place(cls, spec: Any) -> dict[int, AttnRule]:
        return {}


@register_rule
@dataclass(frozen=True)
class GPS(AttnRule):
    """Generalised patch severance, paper Eq. 2: (alpha*I + (1-alpha)*Attn) V, computed as
    alpha*V + (1-alpha)*(Attn V). alpha=0 is vanilla attention; alpha=1 skips Q and K entirely."""

    name: ClassVar[str] = "gps"
    description: ClassVar[str] = ("generalised patch severance (paper Eq. 2): alpha*I + (1-alpha)*Attn in the last "
                                  "len(alpha) blocks, alpha[0] for the last")
    alpha: float = option(1.0, "weight of the identity (paper Eq. 2): 0 = vanilla attention, 1 = severed",
                          low=0.0, high=1.0)

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        if self.alpha == 1.0:
            return attn.out_proj(_project_v(attn, x))
        q, k, v = _project_qkv(attn, x)
        mixed = _softmax_attention(attn, q, k, v)
        if self.alpha != 0.0:
            mixed = self.alpha * v + (1.0 - self.alpha) * mixed
        return attn.out_proj(mixed)

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        vanilla = vanilla_attention(attn, x)
        return self.alpha * torch.eye(x.shape[0], dtype=vanilla.dtype) + (1.0 - self.alpha) * vanilla

    @classmethod
    def place(cls, spec: Any) -> dict[int, AttnRule]:
        return {-(i + 1): cls(a) for i, a in enumerate(spec.alpha) if a > 0}

    def label(self) -> str:
        return f"GPS alpha={self.alpha:g}"


@register_rule
@dataclass(frozen=True)
class CoverageIdentity(AttnRule):
    """The released DeOP rule (METHOD_SPEC 5a): each token sees only itself, scaled by its summed mask
    coverage sum_n sigmoid(m_n(l)); CLS gets N (its mask row is ones). Same factor for every head."""

    name: ClassVar[str] = "coverage"
    description: ClassVar[str] = ("the released DeOP rule: identity scaled by each token's summed proposal-mask "
                                  "coverage, last block")
    needs_masks: ClassVar[bool] = True

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        coverage = masks.sum(dim=-1, keepdim=True)
        v = _project_v(attn, x)
        return attn.out_proj(coverage.to(v.dtype) * v)

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        return torch.diag(masks.float().sum(-1)).expand(attn.num_heads, -1, -1)

    def label(self) -> str:
        return "identity x mask coverage"


@register_rule
@dataclass(frozen=True)
class MPS(AttnRule):
    """Mask-guided patch severance as the official code computes it (METHOD_SPEC 5c): A = softmax_j(m_i . m_j)
    with m the (1+HW) x N sigmoid masks (CLS row = ones), no 1/sqrt(d) scaling, out = A V.

    A is the same for every head, so it is applied once to all C channels through SDPA with the masks as
    queries and keys (scale 1): exact, and the T x T matrix is not materialised where a fused kernel exists."""

    name: ClassVar[str] = "mps"
    description: ClassVar[str] = "mask-guided patch severance: softmax_j(m_i . m_j) over proposal masks, last block"
    needs_masks: ClassVar[bool] = True

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        v = _project_v(attn, x)
        m = masks.to(v.dtype).unsqueeze(1)
        out = F.scaled_dot_product_attention(m, m, v.unsqueeze(1), scale=1.0).squeeze(1)
        return attn.out_proj(out)

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        m = masks.float()
        return (m @ m.T).softmax(-1).expand(attn.num_heads, -1, -1)

    def label(self) -> str:
        return "MPS"


VANILLA = Vanilla()


def run_block(block: nn.Module, x: Tensor, rule: AttnRule | None = None, masks: Tensor | None = None, *,
              residual: bool = True, ffn: bool = True, grid: tuple[int, int] | None = None,
              proxy: Tensor | None = None) -> Tensor:
    """open_clip's ResidualAttentionBlock forward on batch-first tokens x (B, T, C), its attention branch computed
    by ``rule`` (None: CLIP's own attention, `Vanilla`, through SDPA) with the ``grid``/``proxy`` its `context`
    names; ``residual``/``ffn`` False drop the residual sum (y = out(A)) / the FFN (the training-free last blocks).

    The one block runner of the dense trunk (`clip_trunk.CLIPTrunk`: DeOP's, the training-free family's) and of the
    crop path (SimBaseline's N' CLIP passes), so that every method gets the same attention kernel; open_clip's own
    block would take nn.MultiheadAttention's native path under no_grad, which materialises the attention matrix
    (and which torch's FLOP counter does not see)."""
    rule = VANILLA if rule is None else rule
    available = {"grid": grid, "proxy": proxy}
    a = rule.mix(block.ln_1(x), block.attn, masks, **{k: available[k] for k in rule.context})
    y = x + block.ls_1(a) if residual else a
    if ffn:
        y = y + block.ls_2(run_mlp(block.mlp, block.ln_2(y)))
    return y


def run_mlp(mlp: nn.Module, x: Tensor) -> Tensor:
    """open_clip's block MLP (c_fc, activation, c_proj). Without autograd, QuickGELU's x * sigmoid(1.702 x) is
    computed in place on c_fc's output: the same operations in the same order (bit-identical), one (T, 4C) buffer
    instead of three fresh ones (about 10% of SimBaseline's crop pass on a CPU, 2% of DeOP's dense pass)."""
    if torch.is_grad_enabled() or not isinstance(getattr(mlp, "gelu", None), QuickGELU):
        return mlp(x)
    h = mlp.c_fc(x)
    h.mul_(torch.sigmoid_(h * 1.702))
    return mlp.c_proj(h)


# The training-free family's rules register after DeOP's, so the table lists DeOP's first (`ps` choices, `harness
# list rules`); imported here so that every reader of ATTENTION_RULES sees them.
from .training_free_rules import QQ, QQKK, KKGauss, Proxy, gaussian_bias, proxy_attention  # noqa: E402, F401
