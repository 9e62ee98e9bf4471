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

The trunk is DeOP's (`clip_trunk.CLIPTrunk`): this family passes in its last block's rule, residual and FFN
(`BlockChange`), CLIP's pixel statistics, its `remainder` and `pos_interp`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from harness.errors import ConfigError

from .attention_rules import AttnRule, rule_class
from .clip_trunk import BlockChange, CLIPTrunk

KEEP_DROP = ("keep", "drop")
ATTENTIONS = ("qk", "identity", "qq+kk", "qq", "kk+gauss", "proxy")  # the family's own rules, by its names


def make_rule(attention: str, **options: Any) -> AttnRule:
    """The table's rule instance for a rule name (or the family's alias of one), with those of ``options`` that
    are the rule's own (e.g. ``sigma`` for ``kk+gauss``; the rule's defaults for the rest)."""
    cls = rule_class(attention, option="attention")
    own = {k: v for k, v in options.items() if k in cls.option_names()}
    return cls.from_options(own, where=f"part attention {cls.name!r}: ")


class TrainingFreeCLIP(CLIPTrunk):
    """A frozen open_clip ViT whose last block follows an attention rule: normalised images (B, 3, H, W) ->
    L2-normalised patch features (B, D, gh, gw) (on the proxy's grid for `proxy`).

    The positional embedding is resampled bicubically to each input's grid (cached per grid), by `pos_interp`:
    "size" (DeOP's `resample_token_table`) or "scale-factor" (the SCLIP family's (g + 0.1) / n0,
    `protocol_resize.resample_positions`). `remainder`: a side that is not a multiple of the patch
    size is cut ("crop", what the repos' stride-p convolution does) or zero-padded ("pad")."""

    def __init__(self, clip_model: nn.Module, rule: AttnRule, residual: str = "keep", ffn: str = "keep",
                 remainder: str = "crop", pos_interp: str = "size") -> None:
        for name, value in (("residual", residual), ("ffn", ffn)):
            if value not in KEEP_DROP:
                raise ConfigError(f"{name} must be 'keep' or 'drop', got {value!r}.")
        last = BlockChange(rule, residual=residual == "keep", ffn=ffn == "keep")
        super().__init__(clip_model, blocks={-1: last}, normalisation="clip", remainder=remainder,
                         pos_interp=pos_interp)
        self.rule, self.residual, self.ffn = rule, residual, ffn

    def forward(self, x: Tensor, proxy: Tensor | None = None) -> Tensor:
        return self.encode(x, proxy=proxy).patch_features
