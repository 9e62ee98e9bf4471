"""A proposal-based variant with another pooling, out of tree: each proposal's CLIP embedding is the mean of the
patches where its mask probability exceeds `pool_threshold` (hard masks) instead of the soft mask pooling."""

from dataclasses import dataclass
from typing import ClassVar

from harness.parts import option, register_part
from harness.registries import METHODS
from methods.components.anchors import mask_pooling
from methods.components.pooling import Pooling
from methods.plugin import Plugin


@register_part
@dataclass(frozen=True)
class HardMaskPooling(Pooling):
    name: ClassVar[str] = "hard-mask"
    description: ClassVar[str] = "mask pooling over the patches whose mask probability exceeds pool_threshold"
    pool_threshold: float = option(0.5, "mask probability above which a patch belongs to a proposal",
                                   low=0.0, high=1.0, high_open=True)

    def pool(self, features, masks):  # (B, D, gh, gw), probabilities (B, N, gh, gw) -> (B, N, D), L2-normalised
        return mask_pooling(features, (masks > self.pool_threshold).to(masks.dtype))


HARD_POOL = Plugin("hard-pool", "baseline (frozen CLIP, offline prompt) with hard mask pooling (example b)",
                   pooling="hard-mask", pool_threshold=0.4)
METHODS.register("hard-pool", "hard_pool:HARD_POOL")
