"""The last-block rules of the training-free CLIP family (TRAINING_FREE_SPEC 1) and the frozen CLIP trunk they end.

Notation: `h = ln_1(x)` the tokens entering the last block after its LayerNorm, `q, k, v` their per-head
projections, `s = head_dim^-0.5`, `out(A) = W_o concat_h(A_h v_h) + b_o`. Every rule is one object with a `name`,
a one-line `description`, `matrix(...)`: the explicit attention matrix (for tests and figures), and `mix(...)`:
the same computation without materialising the matrix where a fused kernel exists.

| name | attention per head | of |
|---|---|---|
| `qk` | softmax(s q k^T) | vanilla CLIP |
| `identity` | I (out = W_o v + b_o; DeOP's GPS at alpha = 1) | MaskCLIP |
| `qq+kk` | softmax(s q q^T) + softmax(s k k^T), rows sum to 2 | SCLIP |
| `qq` | softmax(s q q^T) | ClearCLIP |
| `kk+gauss` | softmax(s k k^T + G), G_ij = exp(-|p_i - p_j|^2 / (2 sigma^2)) on the patch grid, CLS row/col 0 | NACLIP |
| `proxy` | softmax(gamma (S - beta mean S)) with entries < 0 at -inf, S the cosine similarity of a foundation model's patch features, shared by all heads; CLIP's patch values resized bilinearly to that grid | ProxyCLIP |

After the attention the block keeps or drops its residual (`y = x + out(A)` or `y = out(A)`) and its FFN
(`y + mlp(ln_2(y))` or `y`); then `f = ln_post(y) W_proj`, L2-normalised. `proxy` returns patch tokens on the
foundation model's grid and no CLS token, so it needs `residual: drop` (ProxyCLIP drops both).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

from .clip_dense import CLIP_MEAN_255, CLIP_STD_255, resample_token_table

KEEP_DROP = ("keep", "drop")


def split_heads(t: Tensor, heads: int) -> Tensor:
    b, n, c = t.shape
    return t.view(b, n, heads, c // heads).transpose(1, 2)


def merge_heads(t: Tensor) -> Tensor:
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


def qkv_heads(attn: nn.MultiheadAttention, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, T, C) -> q, k, v each (B, heads, T, head_dim), biases included."""
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return tuple(split_heads(t, attn.num_heads) for t in (q, k, v))


def gaussian_bias(grid: tuple[int, int], sigma: float, device=None, dtype=torch.float32) -> Tensor:
    """(1 + gh*gw) x (1 + gh*gw): G_ij = exp(-|p_i - p_j|^2 / (2 sigma^2)) over patch positions (row-major), peak 1,
    not normalised; row and column 0 (CLS) are 0 (NACLIP's `get_attention_addition`)."""
    ys, xs = torch.meshgrid(torch.arange(grid[0], device=device, dtype=torch.float32),
                            torch.arange(grid[1], device=device, dtype=torch.float32), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1)
    g = torch.exp(-torch.cdist(pos, pos).square() / (2.0 * sigma ** 2))
    return F.pad(g, (1, 0, 1, 0)).to(dtype)


def proxy_attention(features: Tensor, beta: float, gamma: float) -> Tensor:
    """Foundation-model patch features (B, C, H, W) -> (B, N, N) attention, N = H*W: S = cosine similarity,
    S' = gamma * (S - beta * mean(S)) with the mean over each image's N*N entries, S' < 0 -> -inf, softmax.
    ProxyCLIP takes the mean over the whole batch tensor; per image is the same at its batch size of one.
    A row with no positive entry (possible only if mean(S) > 1/beta) keeps its diagonal instead of NaN."""
    f = F.normalize(features.flatten(2).float(), dim=1)
    s = torch.einsum("bcm,bcn->bmn", f, f)
    s = gamma * (s - beta * s.mean(dim=(1, 2), keepdim=True))
    s = s.masked_fill(s < 0, float("-inf"))
    empty = torch.isinf(s).all(dim=-1)
    if empty.any():
        eye = torch.eye(s.shape[-1], dtype=torch.bool, device=s.device).expand_as(s)
        s = torch.where(empty.unsqueeze(-1) & eye, torch.zeros_like(s), s)
    return s.softmax(dim=-1)


@dataclass(frozen=True)
class LastBlockRule(ABC):
    """One attention rule of the last block (see the module table)."""

    name: ClassVar[str]
    description: ClassVar[str]
    keeps_cls: ClassVar[bool] = True  # False: the output holds patch tokens on the proxy grid only

    @abstractmethod
    def matrix(self, q: Tensor, k: Tensor, grid: tuple[int, int], proxy: Tensor | None = None) -> Tensor:
        """The explicit attention matrix (B, heads or 1, T_out, T_in) from q, k (B, heads, T, d)."""

    def mix(self, h: Tensor, attn: nn.MultiheadAttention, grid: tuple[int, int], proxy: Tensor | None = None,
            ) -> Tensor:
        """ln_1 tokens (B, T, C) -> out(A) (B, T_out, C). Default: through the explicit matrix."""
        q, k, v = qkv_heads(attn, h)
        a = self.matrix(q, k, grid, proxy).to(v.dtype)
        return attn.out_proj(merge_heads(a @ v))


def _scaled(q: Tensor, k: Tensor) -> Tensor:
    return (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5


@dataclass(frozen=True)
class QK(LastBlockRule):
    name: ClassVar[str] = "qk"
    description: ClassVar[str] = "vanilla CLIP attention softmax(s q k^T)"

    def matrix(self, q, k, grid, proxy=None):
        return _scaled(q, k).softmax(dim=-1)

    def mix(self, h, attn, grid, proxy=None):
        q, k, v = qkv_heads(attn, h)
        return attn.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


@dataclass(frozen=True)
class Identity(LastBlockRule):
    name: ClassVar[str] = "identity"
    description: ClassVar[str] = "MaskCLIP: each token attends only to itself, out = W_o v + b_o (GPS alpha = 1)"

    def matrix(self, q, k, grid, proxy=None):
        eye = torch.eye(q.shape[-2], dtype=q.dtype, device=q.device)
        return eye.expand(q.shape[0], q.shape[1], -1, -1)

    def mix(self, h, attn, grid, proxy=None):
        c = attn.embed_dim
        bias = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * c:]
        return attn.out_proj(F.linear(h, attn.in_proj_weight[2 * c:], bias))


@dataclass(frozen=True)
class QQKK(LastBlockRule):
    name: ClassVar[str] = "qq+kk"
    description: ClassVar[str] = "SCLIP: softmax(s q q^T) + softmax(s k k^T), not renormalised"

    def matrix(self, q, k, grid, proxy=None):
        return _scaled(q, q).softmax(dim=-1) + _scaled(k, k).softmax(dim=-1)

    def mix(self, h, attn, grid, proxy=None):
        q, k, v = qkv_heads(attn, h)
        out = F.scaled_dot_product_attention(q, q, v) + F.scaled_dot_product_attention(k, k, v)
        return attn.out_proj(merge_heads(out))


@dataclass(frozen=True)
class QQ(LastBlockRule):
    name: ClassVar[str] = "qq"
    description: ClassVar[str] = "ClearCLIP: softmax(s q q^T)"

    def matrix(self, q, k, grid, proxy=None):
        return _scaled(q, q).softmax(dim=-1)

    def mix(self, h, attn, grid, proxy=None):
        q, _, v = qkv_heads(attn, h)
        return attn.out_proj(merge_heads(F.scaled_dot_product_attention(q, q, v)))


@dataclass(frozen=True)
class KKGauss(LastBlockRule):
    name: ClassVar[str] = "kk+gauss"
    description: ClassVar[str] = "NACLIP: softmax(s k k^T + G), G a Gaussian of patch distance (sigma in patches)"
    sigma: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, int | float) or not self.sigma > 0:
            raise ConfigError(f"kk+gauss sigma (in patches) must be a number > 0, got {self.sigma!r}.")

    def matrix(self, q, k, grid, proxy=None):
        return (_scaled(k, k) + gaussian_bias(grid, self.sigma, k.device, k.dtype)).softmax(dim=-1)

    def mix(self, h, attn, grid, proxy=None):
        _, k, v = qkv_heads(attn, h)
        bias = gaussian_bias(grid, self.sigma, k.device, k.dtype)
        return attn.out_proj(merge_heads(F.scaled_dot_product_attention(k, k, v, attn_mask=bias)))


@dataclass(frozen=True)
class Proxy(LastBlockRule):
    name: ClassVar[str] = "proxy"
    description: ClassVar[str] = ("ProxyCLIP: softmax(gamma (S - beta mean S)), negatives -inf, S = cosine of a "
                                  "foundation model's patch features, shared by heads, on its grid")
    keeps_cls: ClassVar[bool] = False
    beta: float = 1.2
    gamma: float = 3.0

    def __post_init__(self) -> None:
        for name in ("beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"proxy {name} must be a number > 0, got {value!r}.")

    def matrix(self, q, k, grid, proxy=None):
        if proxy is None:
            raise ConfigError("the proxy attention needs the foundation model's patch features (B, C, H, W).")
        return proxy_attention(proxy, self.beta, self.gamma).unsqueeze(1)

    def mix(self, h, attn, grid, proxy=None):
        _, _, v = qkv_heads(attn, h)
        a = self.matrix(None, None, grid, proxy).to(v.dtype)  # (B, 1, N, N): one matrix for every head
        b, heads, _, d = v.shape
        patches = v[:, :, 1:].reshape(b * heads, grid[0], grid[1], d).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=tuple(proxy.shape[-2:]), mode="bilinear", align_corners=False)
        patches = patches.flatten(2).transpose(1, 2).reshape(b, heads, -1, d)
        return attn.out_proj(merge_heads(a @ patches))


RULES: dict[str, type[LastBlockRule]] = {r.name: r for r in (QK, Identity, QQKK, QQ, KKGauss, Proxy)}


def make_rule(name: str, **params) -> LastBlockRule:
    if name not in RULES:
        raise ConfigError(f"unknown last-block attention {name!r}; use one of {', '.join(RULES)}.")
    return RULES[name](**params)


def last_block(block: nn.Module, x: Tensor, rule: LastBlockRule, residual: str, ffn: str,
               grid: tuple[int, int], proxy: Tensor | None = None) -> Tensor:
    """open_clip's last ResidualAttentionBlock with `rule` as its attention, residual and FFN kept or dropped."""
    a = rule.mix(block.ln_1(x), block.attn, grid, proxy)
    if residual == "keep":
        if not rule.keeps_cls:
            raise ConfigError(f"attention {rule.name!r} returns tokens on another grid: it needs residual: drop.")
        y = x + block.ls_1(a)
    else:
        y = a
    if ffn == "keep":
        y = y + block.ls_2(block.mlp(block.ln_2(y)))
    return y


class TrainingFreeCLIP(nn.Module):
    """A frozen open_clip ViT whose last block follows a `LastBlockRule`: normalised images (B, 3, H, W) ->
    L2-normalised patch features (B, D, gh, gw) (on the proxy's grid for `proxy`).

    The positional embedding is resampled bicubically to each input's grid (cached per grid through
    `resample_token_table`, the DeOP path's function). `remainder`: a side that is not a multiple of the patch
    size is cut ("crop", what the repos' stride-p convolution does) or zero-padded ("pad")."""

    def __init__(self, clip_model: nn.Module, rule: LastBlockRule, residual: str = "keep", ffn: str = "keep",
                 remainder: str = "crop") -> None:
        super().__init__()
        from .clip_dense import _vision_transformer  # the shared check that this is a plain CLS-pooled ViT

        for name, value in (("residual", residual), ("ffn", ffn)):
            if value not in KEEP_DROP:
                raise ConfigError(f"{name} must be 'keep' or 'drop', got {value!r}.")
        if remainder not in ("crop", "pad"):
            raise ConfigError(f"remainder must be 'crop' or 'pad', got {remainder!r}.")
        if not rule.keeps_cls and residual == "keep":
            raise ConfigError(f"attention {rule.name!r} returns tokens on another grid: it needs residual: drop.")
        visual = _vision_transformer(clip_model)
        for p in visual.parameters():
            p.requires_grad_(False)
        self.visual = visual.eval()
        self.rule, self.residual, self.ffn, self.remainder = rule, residual, ffn, remainder
        self.patch_size = tuple(visual.patch_size)
        self.native_grid = tuple(visual.grid_size)
        self.register_buffer("pixel_mean", torch.tensor(CLIP_MEAN_255).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_STD_255).view(1, 3, 1, 1), persistent=False)
        self._pos: dict[tuple, Tensor] = {}

    def train(self, mode: bool = True) -> TrainingFreeCLIP:
        super().train(mode)
        self.visual.eval()
        return self

    def normalise(self, images: Tensor) -> Tensor:
        """Raw RGB [0, 255] -> CLIP-normalised (the repos' mean 122.771, 116.746, 104.094 / std 68.501, ...)."""
        return (images.float() - self.pixel_mean) / self.pixel_std

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        ph, pw = self.patch_size
        if self.remainder == "pad":
            return math.ceil(height / ph), math.ceil(width / pw)
        return height // ph, width // pw

    def tokens_before_last(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Normalised images -> the (B, 1 + gh*gw, C) tokens entering the last block, and the grid."""
        grid = self.grid_for(*x.shape[-2:])
        if min(grid) < 1:
            raise ValueError(f"input {tuple(x.shape[-2:])} is smaller than one {self.patch_size} patch")
        ph, pw = self.patch_size
        x = F.pad(x, (0, max(grid[1] * pw - x.shape[-1], 0), 0, max(grid[0] * ph - x.shape[-2], 0)))
        x = x[..., :grid[0] * ph, :grid[1] * pw]
        v = self.visual
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(v.conv1.weight.dtype)
        t = v.conv1(x).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(t.dtype).view(1, 1, -1).expand(t.shape[0], -1, -1)
        t = torch.cat([cls, t], dim=1) + self._positions(grid).to(t.dtype)
        t = v.ln_pre(t)
        for block in v.transformer.resblocks[:-1]:
            t = block(t) if v.transformer.batch_first else block(t.transpose(0, 1)).transpose(0, 1)
        return t, grid

    def forward(self, x: Tensor, proxy: Tensor | None = None) -> Tensor:
        tokens, grid = self.tokens_before_last(x)
        y = last_block(self.visual.transformer.resblocks[-1], tokens, self.rule, self.residual, self.ffn, grid,
                       proxy)
        f = F.normalize(self.visual.ln_post(y) @ self.visual.proj, dim=-1)
        patches = f[:, 1:] if self.rule.keeps_cls else f
        out_grid = grid if self.rule.keeps_cls else tuple(proxy.shape[-2:])
        return patches.transpose(1, 2).reshape(f.shape[0], -1, *out_grid)

    def _positions(self, grid: tuple[int, int]) -> Tensor:
        table = self.visual.positional_embedding
        key = (grid, table.device, table.dtype, table._version)
        if key not in self._pos:
            if len(self._pos) >= 16:
                self._pos.pop(next(iter(self._pos)))
            with torch.inference_mode(False), torch.no_grad():
                self._pos[key] = resample_token_table(table, self.native_grid, grid)
        return self._pos[key]
