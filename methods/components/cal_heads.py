"""The classification head of a proposal: parts of kind ``cal`` (`harness.parts`; ``harness list parts``), selected by
the one-pass option ``cal`` (paper Sec. 4.2, METHOD_SPEC 6).

A CAL head is a frozen dataclass whose fields are its options; ``build(dim, num_queries)`` makes the trainable
module the one-pass pipeline runs: ``forward(features (B, D, gh, gw) L2-normalised CLIP features, masks (B, N, gh,
gw) proposal probabilities) -> (pooled (B, N, D), heatmaps (B, N, gh, gw))``. ``none`` builds nothing: each proposal
is then pooled by the spec's ``pooling`` part. An out-of-tree head is one registered class; its own options pass
through the spec like a pooling's (methods/README.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from harness.parts import Part, option, part_table, register_part

from .anchors import ConvHeatmapDecoder, QueryHeatmapDecoder

CAL_HEADS = part_table("cal")  # the registered CAL heads (harness list parts)
CONV_VARIANTS = ("paper", "released")


@dataclass(frozen=True)
class CALHead(Part, ABC):
    """The base of every CAL head. ``trains``: whether it has parameters for stage 3 to learn."""

    kind: ClassVar[str] = "cal"
    trains: ClassVar[bool] = True

    @abstractmethod
    def build(self, dim: int, num_queries: int) -> nn.Module | None:
        """The head for CLIP features of width ``dim`` and ``num_queries`` proposals (None: no head)."""


@register_part
@dataclass(frozen=True)
class NoCAL(CALHead):
    name: ClassVar[str] = "none"
    description: ClassVar[str] = "no CAL head: each proposal is pooled by the spec's pooling part (baseline)"
    trains: ClassVar[bool] = False

    def build(self, dim: int, num_queries: int) -> nn.Module | None:
        return None


@dataclass(frozen=True)
class LayeredCAL(CALHead, ABC):
    """What the two decoders of the paper share: their depth K (one declaration for both, and for the spec's
    ``cal_layers``)."""

    cal_layers: int = option(1, "inner layers K of the CAL decoder (the released conv variant ignores it)",
                             low=0, high=64)


@register_part
@dataclass(frozen=True)
class QueryCAL(LayeredCAL):
    """Query-based heatmap decoder (paper Eq. 3): K DETR decoder layers, then the heatmap output layer; 8 heads,
    FFN width 2D, one anchor query per proposal (`anchors.QueryHeatmapDecoder`)."""

    name: ClassVar[str] = "query"
    description: ClassVar[str] = "query-based CAL (paper Eq. 3): K DETR decoder layers, then per-head heatmaps"
    # the official decoder dropout; 0 makes DDP and single-process training identical
    cal_dropout: float = option(0.1, "dropout of the query-based CAL decoder", low=0.0, high=1.0)

    def build(self, dim: int, num_queries: int) -> nn.Module | None:
        return QueryHeatmapDecoder(d_model=dim, nheads=8, dim_ff=2 * dim, num_layers=self.cal_layers,
                                   num_queries=num_queries, dropout=self.cal_dropout)


@register_part
@dataclass(frozen=True)
class ConvCAL(LayeredCAL):
    """Conv-based heatmap decoder (paper Eq. 4), or the released bytecode's variant (`anchors.ConvHeatmapDecoder`)."""

    name: ClassVar[str] = "conv"
    description: ClassVar[str] = "conv-based CAL (paper Eq. 4): K conv-BN-ReLU blocks and a 1-channel conv"
    conv_variant: str = option("paper", "paper (Eq. 4, softmax) or released (one conv, sigmoid, not normalised)",
                               choices=CONV_VARIANTS)

    def build(self, dim: int, num_queries: int) -> nn.Module | None:
        return ConvHeatmapDecoder(d=dim, num_layers=self.cal_layers, variant=self.conv_variant)
