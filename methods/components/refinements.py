"""Refinements of a dense method's logits after upsampling (parts of kind ``refinement``, `harness.parts`;
``harness list parts``). A refinement is a frozen dataclass whose fields are its options; ``refine(image,
logits)`` gets the normalised image at the output size (1, 3, H, W) and the logits (1, K, H, W) and returns
refined logits of the same shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from harness.parts import Part, option, part_table, register_part

from .pamr import NACLIP_DILATIONS, NACLIP_STEPS, pamr

REFINEMENTS = part_table("refinement")  # the registered refinements (harness list parts)


@register_part
@dataclass(frozen=True)
class PAMRRefinement(Part):
    """PAMR (Araslanov & Roth, CVPR 2020) as NACLIP applies it (methods/components/pamr.py)."""

    kind: ClassVar[str] = "refinement"
    name: ClassVar[str] = "pamr"
    description: ClassVar[str] = "pixel-adaptive mask refinement of the logits, guided by the image (NACLIP)"

    steps: int = option(NACLIP_STEPS, "refinement iterations (0: none)", low=0, high=1000)
    dilations: tuple[int, ...] = option(NACLIP_DILATIONS, "dilations of the 3x3 affinity neighbourhoods", low=1,
                                        high=1024)

    def refine(self, image: Tensor, logits: Tensor) -> Tensor:
        return pamr(image, logits, self.steps, self.dilations)
