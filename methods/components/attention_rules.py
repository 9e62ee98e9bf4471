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

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

ATTENTION_RULES: dict[str, type[AttnRule]] = {}


def register_rule(cls: type[AttnRule]) -> type[AttnRule]:
    """Class decorator: add ``cls`` to `ATTENTION_RULES` under ``cls.name`` (a name taken twice is an error)."""
    if not cls.name or not cls.description:
        raise ConfigError(f"attention rule {cls.__name__} needs a name and a one-line description.")
    previous = ATTENTION_RULES.get(cls.name)
    if previous is not None and previous is not cls:
        raise ConfigError(f"attention rule name {cls.name!r} is taken by {previous.__module__}.{previous.__name__}.")
    ATTENTION_RULES[cls.name] = cls
    return cls


def rule_descriptions() -> list[tuple[str, str]]:
    """(name, description) of every registered rule, for ``harness list rules`` (TOOLS: "attention-rules")."""
    return [(name, cls.description) for name, cls in ATTENTION_RULES.items()]


def rules_for(ps: str, spec: Any) -> dict[int, AttnRule]:
    """Block index (from the end) -> rule instance, for a spec whose `ps` names a registered rule."""
    if ps not in ATTENTION_RULES:
        raise ConfigError(f"option ps={ps!r} is not one of {', '.join(ATTENTION_RULES)}.")
    return ATTENTION_RULES[ps].place(spec)


# ----------------------------------------------------------------------------------------------- projections


def _split_heads(t: Tensor, heads: int) -> Tensor:
    b, n, c = t.shape
    return t.view(b, n, heads, c // heads).transpose(1, 2)


def _merge_heads(t: Tensor) -> Tensor:
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def _project_v(attn: nn.MultiheadAttention, x: Tensor) -> Tensor:
    c = attn.embed_dim
    bias = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * c:]
    return F.linear(x, attn.in_proj_weight[2 * c:], bias)


def _project_qkv(attn: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return q, k, v


def _softmax_attention(attn: nn.MultiheadAttention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(QK^T/sqrt(d)) V per head, never materialising the matrix where a fused kernel exists."""
    h = attn.num_heads
    out = F.scaled_dot_product_attention(_split_heads(q, h), _split_heads(k, h), _split_heads(v, h))
    return _merge_heads(out)


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
class AttnRule(ABC):
    """How a block mixes its tokens. `mix` gets ln_1(x) (B, T, C) and returns the attention branch output
    (after out_proj), before LayerScale and the residual sum; `masks` (B, T, N) are the proposal masks as
    probabilities on the token grid with a row of ones for CLS (only for rules with `needs_masks`)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
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
        """Block index (negative: from the end) -> instance, for a method spec. Default: the last block."""
        return {-1: cls()}

    def label(self) -> str:
        """How the attention figure names this rule instance."""
        return self.name


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
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ConfigError(f"GPS alpha must lie in [0, 1] (paper Eq. 2), got {self.alpha}.")

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


# ------------------------------------------------------------------------- the training-free family's last blocks
# (TRAINING_FREE_SPEC 1). Their `context` names what `mix`/`attention` need beyond the block input: the patch
# grid ("grid") or a foundation model's patch features ("proxy"); the training-free pipeline passes them as
# keywords. MaskCLIP's identity is `GPS(1.0)` and vanilla CLIP's `qk` is `Vanilla()` (the same rules, reused).


def _scaled_self(t: Tensor) -> Tensor:
    """s t t^T per head for t (..., T, d), s = d^-0.5."""
    return (t @ t.transpose(-1, -2)) * t.shape[-1] ** -0.5


def _heads(attn: nn.MultiheadAttention, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(_split_heads(t, attn.num_heads) for t in _project_qkv(attn, x))


@register_rule
@dataclass(frozen=True)
class QQKK(AttnRule):
    """SCLIP (ECCV'24, wangf3014/SCLIP @b56bd30 clip/model.py): correlative self-attention."""

    name: ClassVar[str] = "qq+kk"
    description: ClassVar[str] = "SCLIP: softmax(s q q^T) + softmax(s k k^T), rows sum to 2 (not renormalised)"

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None) -> Tensor:
        q, k, v = _heads(attn, x)
        out = F.scaled_dot_product_attention(q, q, v) + F.scaled_dot_product_attention(k, k, v)
        return attn.out_proj(_merge_heads(out))

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None) -> Tensor:
        q, k, _ = (t[0] for t in _heads(attn, x[None]))
        return _scaled_self(q).softmax(-1) + _scaled_self(k).softmax(-1)


@register_rule
@dataclass(frozen=True)
class QQ(AttnRule):
    """ClearCLIP (ECCV'24, mc-lan/ClearCLIP @ad68a40 open_clip/transformer.py): query-query attention."""

    name: ClassVar[str] = "qq"
    description: ClassVar[str] = "ClearCLIP: softmax(s q q^T)"

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None) -> Tensor:
        q, _, v = _heads(attn, x)
        return attn.out_proj(_merge_heads(F.scaled_dot_product_attention(q, q, v)))

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None) -> Tensor:
        return _scaled_self(_heads(attn, x[None])[0][0]).softmax(-1)


def gaussian_bias(grid: tuple[int, int], sigma: float, device=None, dtype=torch.float32) -> Tensor:
    """(1 + gh*gw)^2: G_ij = exp(-|p_i - p_j|^2 / (2 sigma^2)) over patch positions (row-major), peak 1, not
    normalised; row and column 0 (CLS) are 0 (NACLIP's `get_attention_addition`)."""
    ys, xs = torch.meshgrid(torch.arange(grid[0], device=device, dtype=torch.float32),
                            torch.arange(grid[1], device=device, dtype=torch.float32), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1)
    g = torch.exp(-torch.cdist(pos, pos).square() / (2.0 * sigma ** 2))
    return F.pad(g, (1, 0, 1, 0)).to(dtype)


def _need(rule: AttnRule, what: str, value: Any) -> Any:
    if value is None:
        raise ConfigError(f"attention rule {rule.name!r} needs the {what}; it runs in the training-free pipeline "
                          "(methods.pipelines.dense), not as a one-pass `ps` rule.")
    return value


@register_rule
@dataclass(frozen=True)
class KKGauss(AttnRule):
    """NACLIP (WACV'25, sinahmr/NACLIP @0cac3a6 clip/model.py): key-key attention plus a Gaussian neighbourhood."""

    name: ClassVar[str] = "kk+gauss"
    description: ClassVar[str] = "NACLIP: softmax(s k k^T + G), G a Gaussian of patch distance (sigma in patches)"
    context: ClassVar[tuple[str, ...]] = ("grid",)
    sigma: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, int | float) or not self.sigma > 0:
            raise ConfigError(f"kk+gauss sigma (in patches) must be a number > 0, got {self.sigma!r}.")

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None, *,
            grid: tuple[int, int] | None = None) -> Tensor:
        _, k, v = _heads(attn, x)
        bias = gaussian_bias(_need(self, "patch grid", grid), self.sigma, k.device, k.dtype)
        return attn.out_proj(_merge_heads(F.scaled_dot_product_attention(k, k, v, attn_mask=bias)))

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None, *,
                  grid: tuple[int, int] | None = None) -> Tensor:
        k = _heads(attn, x[None])[1][0]
        return (_scaled_self(k) + gaussian_bias(_need(self, "patch grid", grid), self.sigma, k.device)).softmax(-1)

    def label(self) -> str:
        return f"kk+gauss sigma={self.sigma:g}"


def proxy_attention(features: Tensor, beta: float, gamma: float) -> Tensor:
    """Foundation-model patch features (B, C, H, W) -> (B, N, N), N = H*W: S = cosine similarity, S' = gamma *
    (S - beta * mean(S)) with the mean over each image's N*N entries (ProxyCLIP's mean over its batch of one),
    S' < 0 -> -inf, softmax. A row with no positive entry (only if mean(S) > 1/beta) keeps its diagonal, not NaN."""
    f = F.normalize(features.flatten(2).float(), dim=1)
    s = torch.einsum("bcm,bcn->bmn", f, f)
    s = gamma * (s - beta * s.mean(dim=(1, 2), keepdim=True))
    s = s.masked_fill(s < 0, float("-inf"))
    empty = torch.isinf(s).all(dim=-1, keepdim=True)
    if empty.any():
        eye = torch.eye(s.shape[-1], dtype=torch.bool, device=s.device)
        s = s.masked_fill(empty & eye, 0.0)
    return s.softmax(dim=-1)


@register_rule
@dataclass(frozen=True)
class Proxy(AttnRule):
    """ProxyCLIP (ECCV'24, mc-lan/ProxyCLIP @e7b767f open_clip/transformer.py): the attention of a vision
    foundation model's features, applied to CLIP's patch values resized bilinearly to that model's grid. The
    output holds patch tokens on the proxy grid and no CLS token (so the residual must be dropped)."""

    name: ClassVar[str] = "proxy"
    description: ClassVar[str] = ("ProxyCLIP: softmax(gamma (S - beta mean S)), negatives -inf, S = cosine of DINO "
                                  "patch features, shared by heads; CLIP values resized to DINO's grid")
    context: ClassVar[tuple[str, ...]] = ("grid", "proxy")
    beta: float = 1.2
    gamma: float = 3.0

    def __post_init__(self) -> None:
        for name in ("beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"proxy {name} must be a number > 0, got {value!r}.")

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None, *,
            grid: tuple[int, int] | None = None, proxy: Tensor | None = None) -> Tensor:
        gh, gw = _need(self, "patch grid", grid)
        a = proxy_attention(_need(self, "proxy features", proxy), self.beta, self.gamma)
        v = _split_heads(_project_v(attn, x), attn.num_heads)
        b, heads, _, d = v.shape
        patches = v[:, :, 1:].reshape(b * heads, gh, gw, d).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=tuple(proxy.shape[-2:]), mode="bilinear", align_corners=False)
        patches = patches.flatten(2).transpose(1, 2).reshape(b, heads, -1, d)
        return attn.out_proj(_merge_heads(a.to(v.dtype).unsqueeze(1) @ patches))

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None = None, *,
                  grid: tuple[int, int] | None = None, proxy: Tensor | None = None) -> Tensor:
        """(heads, N, N) on the proxy grid; it applies to the resized values, not to ``x``'s."""
        a = proxy_attention(_need(self, "proxy features", proxy)[:1], self.beta, self.gamma)[0]
        return a.expand(attn.num_heads, -1, -1)


VANILLA = Vanilla()


def run_block(block: nn.Module, x: Tensor, rule: AttnRule | None = None, masks: Tensor | None = None) -> Tensor:
    """open_clip's ResidualAttentionBlock forward on batch-first tokens x (B, T, C), its attention branch computed
    by ``rule`` (None: CLIP's own attention, `Vanilla`, through SDPA).

    The one block runner of `DenseCLIP`'s dense path and of its crop path (SimBaseline's N' CLIP passes), so that
    every method gets the same attention kernel; open_clip's own block would take nn.MultiheadAttention's native
    path under no_grad, which materialises the attention matrix (and which torch's FLOP counter does not see)."""
    rule = VANILLA if rule is None else rule
    x = x + block.ls_1(rule.mix(block.ln_1(x), block.attn, masks))
    return x + block.ls_2(block.mlp(block.ln_2(x)))
