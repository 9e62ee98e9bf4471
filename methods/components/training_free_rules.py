"""The training-free family's last-block attention rules (TRAINING_FREE_SPEC 1), entries of the rule table of
`attention_rules` (which imports this module, so importing either registers them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError
from harness.parts import option

from .attention_base import AttnRule, _merge_heads, _project_qkv, _project_v, _split_heads, register_rule

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
    # bounded: 2 sigma^2 underflows to 0 below ~1e-19 (NaN attention) and overflows above ~1e154
    sigma: float = option(5.0, "width of the Gaussian neighbourhood, in patches", low=1e-3, high=1e6)

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
    empty = torch.isinf(s).all(dim=-1)
    # on the diagonal only, unconditionally (a no-op without an empty row): `if empty.any()` would make the host
    # wait for the GPU
    s.diagonal(dim1=-2, dim2=-1).masked_fill_(empty, 0.0)
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
    beta: float = option(1.2, "similarities below beta x their mean are cut", low=0.0, low_open=True, high=1e6)
    gamma: float = option(3.0, "sharpness of the proxy attention", low=0.0, low_open=True, high=1e6)

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
