"""The class-agnostic MaskFormer's hyper-parameters as data (METHOD_SPEC section 1).

The defaults are the paper's proposal network (`zero_shot_maskformer_R101c_bs32_60k.yaml`); the smoke profile
changes sizes only (a smaller timm backbone, fewer queries and layers), never the code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import ConfigError

# ImageNet statistics on 0-255 RGB (`Base-COCOStuff164K-171.yaml` L7-8, METHOD_SPEC 1).
PIXEL_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
PIXEL_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class MaskFormerConfig:
    """Everything that shapes the proposal network.

    backbone: a timm ResNet name. "resnet101c" (deep 3x3 stem) is the paper's R101c; with `stem_width=64`
        timm's deep stem is 3->64, 64->64, 64->128 + max-pool, detectron2's DeepLab stem exactly.
    stem_width: passed to timm when not None (timm's own default for resnet101c is 32: a 32/32/64 stem).
    channels: per-stage base widths for tiny smoke backbones (timm's `channels`), None = the model's own.
    multi_grid: dilation of the 3x3 conv of each block of the last stage (detectron2 RES5_MULTI_GRID); the
        stage keeps its stride, so res5 stays at stride 32. Empty tuple = plain ResNet.
    freeze_bn: every BatchNorm becomes FrozenBatchNorm2d (detectron2's default norm "FrozenBN").
    freeze_at: detectron2 FREEZE_AT: 0 trains every conv, 1 freezes the stem, k>1 also res2..res(k).
    pretrained_backbone: a detectron2 pickle (.pkl, e.g. DeepLab R-103.pkl) or a torch state dict of timm
        names; None = random init (the record must then say "random").
    """

    backbone: str = "resnet101c"
    stem_width: int | None = 64
    channels: tuple[int, ...] | None = None
    multi_grid: tuple[int, ...] = (1, 2, 4)
    freeze_bn: bool = True
    freeze_at: int = 0
    pretrained_backbone: str | None = None
    conv_dim: int = 256
    mask_dim: int = 256
    gn_groups: int = 32
    num_queries: int = 100
    hidden: int = 256
    dec_layers: int = 6
    nheads: int = 8
    dim_ff: int = 2048
    dropout: float = 0.1
    embed_dim: int = 512
    embed_hidden: int = 1024
    embed_layers: int = 2
    mask_layers: int = 3
    deep_supervision: bool = True
    pixel_mean: tuple[float, float, float] = field(default=PIXEL_MEAN)
    pixel_std: tuple[float, float, float] = field(default=PIXEL_STD)

    def __post_init__(self) -> None:
        checks = [
            (self.hidden % self.nheads == 0, f"hidden={self.hidden} must be divisible by nheads={self.nheads}"),
            (self.hidden % 2 == 0, f"hidden={self.hidden} must be even (sine position encoding halves it)"),
            (self.conv_dim % self.gn_groups == 0,
             f"conv_dim={self.conv_dim} must be divisible by gn_groups={self.gn_groups}"),
            (self.dec_layers >= 1, f"dec_layers={self.dec_layers} must be at least 1"),
            (self.num_queries >= 1, f"num_queries={self.num_queries} must be at least 1"),
            (self.embed_layers >= 1 and self.mask_layers >= 1, "embed_layers and mask_layers must be >= 1"),
            (0 <= self.freeze_at <= 5, f"freeze_at={self.freeze_at} must be in 0..5 (detectron2 FREEZE_AT)"),
            (all(d >= 1 for d in self.multi_grid), f"multi_grid={self.multi_grid} needs dilations >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"MaskFormerConfig: {message}. Fix the method spec's proposal settings.")

    @classmethod
    def smoke(cls, **overrides: object) -> MaskFormerConfig:
        """A CPU-sized model through the same code: resnet10t (one block per stage, so one multi-grid
        entry) with 8..64 channels, hidden 32, 10 queries."""
        base: dict[str, object] = dict(
            backbone="resnet10t", stem_width=8, channels=(8, 16, 32, 64), conv_dim=32, mask_dim=32,
            multi_grid=(1,), gn_groups=8, num_queries=10, hidden=32, dec_layers=2, nheads=4, dim_ff=64, embed_dim=32,
            embed_hidden=64,
        )
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]
