"""The last block of the training-free CLIP family (TRAINING_FREE_SPEC 1) and the frozen CLIP trunk it ends.

The attention of the last block is an entry of the attention-rule table (`methods.components.attention_rules`),
by the family's names:

| attention | rule | of |
|---|---|---|
| `qk` | `Vanilla()`: softmax(s q k^T) | vanilla CLIP |
| `identity` | `GPS(1.0)`: out = W_o v + b_o | MaskCLIP (== DeOP's GPS at alpha = 1) |
| `qq+kk` | `QQKK()` | SCLIP |
| `qq` | `QQ()` | ClearCLIP |
| `kk+gauss` | `KKGauss(sigma)` | NACLIP |
| `proxy` | `Proxy(beta, gamma)` | ProxyCLIP |

After the attention the block keeps or drops its residual (`y = x + out(A)` or `y = out(A)`) and its FFN
(`y + mlp(ln_2(y))` or `y`); then `f = ln_post(y) W_proj`, L2-normalised. `proxy` returns patch tokens on the
foundation model's grid and no CLS token, so it needs `residual: drop` (ProxyCLIP drops both).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError

from .attention_rules import AttnRule, rule_class, run_block, run_mlp
from .clip_dense import CLIP_MEAN_255, CLIP_STD_255, frozen_vision_transformer
from .protocol_resize import POS_INTERPS, resample_positions

KEEP_DROP = ("keep", "drop")
ATTENTIONS = ("qk", "identity", "qq+kk", "qq", "kk+gauss", "proxy")  # the family's own rules, by its names


def make_rule(attention: str, **options: Any) -> AttnRule:
    """The table's rule instance for a rule name (or the family's alias of one), with those of ``options`` that
    are the rule's own (e.g. ``sigma`` for ``kk+gauss``; the rule's defaults for the rest)."""
    cls = rule_class(attention, option="attention")
    own = {k: v for k, v in options.items() if k in cls.option_names()}
    return cls.from_options(own, where=f"part attention {cls.name!r}: ")


def keeps_cls(rule: AttnRule) -> bool:
    """Whether the rule's output is the block's own tokens (CLS + patches); `proxy` returns the proxy grid's."""
    return "proxy" not in rule.context


def last_block(block: nn.Module, x: Tensor, rule: AttnRule, residual: str, ffn: str,
               grid: tuple[int, int], proxy: Tensor | None = None) -> Tensor:
    """open_clip's last ResidualAttentionBlock with `rule` as its attention, residual and FFN kept or dropped."""
    context = {"grid": grid, "proxy": proxy}
    a = rule.mix(block.ln_1(x), block.attn, None, **{k: context[k] for k in rule.context})
    if residual == "keep":
        if not keeps_cls(rule):
            raise ConfigError(f"attention {rule.name!r} returns tokens on another grid: it needs residual: drop.")
        y = x + block.ls_1(a)
    else:
        y = a
    if ffn == "keep":
        y = y + block.ls_2(run_mlp(block.mlp, block.ln_2(y)))
    return y


class TrainingFreeCLIP(nn.Module):
    """A frozen open_clip ViT whose last block follows an attention rule: normalised images (B, 3, H, W) ->
    L2-normalised patch features (B, D, gh, gw) (on the proxy's grid for `proxy`).

    The positional embedding is resampled bicubically to each input's grid (cached per grid), by `pos_interp`:
    "size" (the DeOP path's `resample_token_table`) or "scale-factor" (the SCLIP family's (g + 0.1) / n0,
    `protocol_resize.resample_positions`). `remainder`: a side that is not a multiple of the patch
    size is cut ("crop", what the repos' stride-p convolution does) or zero-padded ("pad")."""

    def __init__(self, clip_model: nn.Module, rule: AttnRule, residual: str = "keep", ffn: str = "keep",
                 remainder: str = "crop", pos_interp: str = "size") -> None:
        super().__init__()
        for name, value in (("residual", residual), ("ffn", ffn)):
            if value not in KEEP_DROP:
                raise ConfigError(f"{name} must be 'keep' or 'drop', got {value!r}.")
        if remainder not in ("crop", "pad"):
            raise ConfigError(f"remainder must be 'crop' or 'pad', got {remainder!r}.")
        if pos_interp not in POS_INTERPS:
            raise ConfigError(f"pos_interp must be one of {', '.join(POS_INTERPS)}, got {pos_interp!r}.")
        if not keeps_cls(rule) and residual == "keep":
            raise ConfigError(f"attention {rule.name!r} returns tokens on another grid: it needs residual: drop.")
        self.visual = visual = frozen_vision_transformer(clip_model)
        self.rule, self.residual, self.ffn, self.remainder = rule, residual, ffn, remainder
        self.pos_interp = pos_interp
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
            t = run_block(block, t)  # CLIP's own attention through SDPA, as every method's blocks (issue 17)
        return t, grid

    def forward(self, x: Tensor, proxy: Tensor | None = None) -> Tensor:
        tokens, grid = self.tokens_before_last(x)
        y = last_block(self.visual.transformer.resblocks[-1], tokens, self.rule, self.residual, self.ffn, grid,
                       proxy)
        f = F.normalize(self.visual.ln_post(y) @ self.visual.proj, dim=-1)
        patches = f[:, 1:] if keeps_cls(self.rule) else f
        out_grid = grid if keeps_cls(self.rule) else tuple(proxy.shape[-2:])
        return patches.transpose(1, 2).reshape(f.shape[0], -1, *out_grid)

    def _positions(self, grid: tuple[int, int]) -> Tensor:
        table = self.visual.positional_embedding
        key = (grid, table.device, table.dtype, table._version)
        if key not in self._pos:
            if len(self._pos) >= 16:
                self._pos.pop(next(iter(self._pos)))
            with torch.inference_mode(False), torch.no_grad():
                self._pos[key] = resample_positions(table, self.native_grid, grid, self.pos_interp)
        return self._pos[key]
