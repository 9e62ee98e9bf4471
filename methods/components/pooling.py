"""Pooling: how a proposal's embedding is pooled from the dense CLIP grid when the method has no CAL head
(parts of kind ``pooling``, `harness.parts`; a one-pass spec selects one with ``pooling``, `harness list parts`).

A pooling is a frozen dataclass whose fields are its options; ``pool(features, masks)`` gets the CLIP patch
features (B, D, gh, gw) and the proposal masks as probabilities on the same grid (B, N, gh, gw) and returns the
L2-normalised proposal embeddings (B, N, D). An out-of-tree pooling is one class (methods/README.md, example b).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from harness.parts import Part, part_table, register_part

from .anchors import mask_pooling

POOLINGS = part_table("pooling")  # the registered poolings (harness list parts)


@dataclass(frozen=True)
class Pooling(Part, ABC):
    """The base of every pooling part."""

    kind: ClassVar[str] = "pooling"

    @abstractmethod
    def pool(self, features: Tensor, masks: Tensor) -> Tensor:
        """features (B, D, gh, gw), mask probabilities (B, N, gh, gw) -> (B, N, D), L2-normalised."""


@register_part
@dataclass(frozen=True)
class MaskPooling(Pooling):
    """The baseline's mask pooling (paper Sec. 3.1): L2norm(sum_l P_n(l) F(l))."""

    name: ClassVar[str] = "mask"
    description: ClassVar[str] = "mask pooling (paper Sec. 3.1): L2norm(sum over patches of P_n(l) F(l))"

    def pool(self, features: Tensor, masks: Tensor) -> Tensor:
        return mask_pooling(features, masks)
