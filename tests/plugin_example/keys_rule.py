"""A new attention rule in one place: each token attends by the similarity of its key to the other keys,
softmax(K K^T / sqrt(d)) per head, and a one-pass method that puts it in the last block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from methods.components.attention_rules import (
    AttnRule,
    _merge_heads,
    _project_qkv,
    _split_heads,
    register_rule,
)
from methods.plugin import Plugin


@register_rule
@dataclass(frozen=True)
class SelfKeys(AttnRule):
    name: ClassVar[str] = "test-self-keys"
    description: ClassVar[str] = "tests' example rule: softmax(K K^T / sqrt(d)) per head, last block"

    def mix(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        _, k, v = _project_qkv(attn, x)
        heads = attn.num_heads
        kh, vh = _split_heads(k, heads), _split_heads(v, heads)
        weights = (kh @ kh.transpose(-1, -2) / math.sqrt(kh.shape[-1])).softmax(-1)
        return attn.out_proj(_merge_heads(weights @ vh))

    def attention(self, x: Tensor, attn: nn.MultiheadAttention, masks: Tensor | None) -> Tensor:
        _, k, _ = _project_qkv(attn, x[None])
        kh = _split_heads(k, attn.num_heads)[0]
        return (kh @ kh.transpose(-1, -2) / math.sqrt(kh.shape[-1])).softmax(-1)


ONEPASS_KEYS = Plugin("test-onepass-keys", "baseline with the tests' K K^T rule in its last block",
                      text_prompt="offline", ps="test-self-keys")
