"""A last-block attention rule with an option, out of tree: (1 - blend) softmax(s q k^T) + blend softmax(s k k^T).
Found through its entry point (pyproject.toml); `attention: qk-kk-blend` (or `ps:`) and `blend` work everywhere."""

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from harness.parts import option
from harness.registries import METHODS
from methods.components.attention_rules import AttnRule, merge_heads, project_qkv, register_rule, split_heads
from methods.training_free import TrainingFreePlugin


@register_rule
@dataclass(frozen=True)
class QKKKBlend(AttnRule):
    name: ClassVar[str] = "qk-kk-blend"
    description: ClassVar[str] = "(1 - blend) softmax(s q k^T) + blend softmax(s k k^T), per head, last block"
    blend: float = option(0.5, "weight of the key-key attention", low=0.0, high=1.0)

    def mix(self, x, attn, masks=None):  # x (B, T, C) = ln_1 output -> attention branch after out_proj
        q, k, v = (split_heads(t, attn.num_heads) for t in project_qkv(attn, x))
        out = (1 - self.blend) * F.scaled_dot_product_attention(q, k, v) \
            + self.blend * F.scaled_dot_product_attention(k, k, v)
        return attn.out_proj(merge_heads(out))

    def attention(self, x, attn, masks=None):  # x (T, C) -> (heads, T, T)
        q, k, _ = (split_heads(t, attn.num_heads)[0] for t in project_qkv(attn, x[None]))
        s = q.shape[-1] ** -0.5
        return ((1 - self.blend) * (s * q @ k.transpose(-1, -2)).softmax(-1)
                + self.blend * (s * k @ k.transpose(-1, -2)).softmax(-1))


BLEND_CLIP = TrainingFreePlugin("blend-clip", "CLIP whose last block blends q-k and k-k attention (example a)",
                                attention="qk-kk-blend", blend=0.3, residual="drop", ffn="drop")
METHODS.register("blend-clip", "blend_rule:BLEND_CLIP")
