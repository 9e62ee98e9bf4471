"""The proposal network's ResNet through timm: R101c with a DeepLab stem, multi-grid res5 and frozen BN.

METHOD_SPEC 1: detectron2 `build_resnet_deeplab_backbone`, depth 101, deep stem 3->64 (s2), 64->64, 64->128 then
max-pool, stride in the 3x3 conv (`STRIDE_IN_1X1 False`), res5 blocks dilated 1/2/4 at stride 32
(`RES5_MULTI_GRID`), FrozenBN everywhere, `FREEZE_AT 0`, outputs res2..res5 (strides 4, 8, 16, 32).
timm's `resnet101c` is the same graph once `stem_width=64` (timm's own default 32 gives a 32/32/64 stem).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from harness.errors import ConfigError

from .config import MaskFormerConfig

STAGES = ("layer1", "layer2", "layer3", "layer4")  # timm names of detectron2's res2..res5


class ResNetBackbone(nn.Module):
    """timm ResNet trunk returning [res2, res3, res4, res5]; `out_channels` and `strides` describe them."""

    def __init__(self, cfg: MaskFormerConfig) -> None:
        super().__init__()
        import timm

        kwargs: dict[str, object] = {"features_only": True, "out_indices": (1, 2, 3, 4)}
        # Frozen BN makes BN affine params constants: timm's zero-init of each block's last BN gamma would then
        # switch every residual branch off for good when training from scratch (smoke profile).
        kwargs["zero_init_last"] = False
        if cfg.stem_width is not None:
            kwargs["stem_width"] = cfg.stem_width
        if cfg.channels is not None:
            kwargs["channels"] = tuple(cfg.channels)
        try:
            self.body = timm.create_model(cfg.backbone, pretrained=False, **kwargs)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(
                f"Cannot build the proposal backbone {cfg.backbone!r} with timm ({exc}). Use a timm ResNet name "
                "such as 'resnet101c' (paper), 'resnet50', 'resnet18' or 'resnet10t' (smoke)."
            ) from exc
        self.out_channels: list[int] = list(self.body.feature_info.channels())
        self.strides: list[int] = list(self.body.feature_info.reduction())
        if cfg.multi_grid:
            set_multi_grid(getattr(self.body, STAGES[-1]), cfg.multi_grid)
        if cfg.freeze_bn:
            from timm.layers.norm_act import freeze_batch_norm_2d

            self.body = freeze_batch_norm_2d(self.body)
        freeze_stages(self.body, cfg.freeze_at)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.body(images)


def set_multi_grid(stage: nn.Module, multi_grid: tuple[int, ...]) -> None:
    """Dilate the 3x3 conv (`conv2`) of block i of `stage` by multi_grid[i], keeping the stage's stride.

    timm's `output_stride` dilates whole stages and trades stride for dilation; DeepLab's multi-grid with
    RES5_DILATION 1 keeps stride 32 and dilates per block, which timm cannot express, so the convs are
    edited after construction (padding = dilation keeps the spatial size of a 3x3 conv).
    """
    blocks = list(stage.children())
    if len(blocks) != len(multi_grid):
        raise ConfigError(
            f"multi_grid={multi_grid} has {len(multi_grid)} entries but the backbone's last stage has "
            f"{len(blocks)} blocks. Give one dilation per block, or multi_grid=() for a plain ResNet."
        )
    for block, dilation in zip(blocks, multi_grid):
        conv = getattr(block, "conv2", None)
        if not isinstance(conv, nn.Conv2d) or conv.kernel_size != (3, 3):
            raise ConfigError(
                f"multi_grid needs ResNet blocks whose conv2 is a 3x3 conv; got {type(block).__name__}. "
                "Use a timm ResNet backbone or multi_grid=()."
            )
        conv.dilation = (dilation, dilation)
        conv.padding = (dilation, dilation)


def fold_frozen_batch_norm(body: nn.Module) -> int:
    """Fold every frozen BN of a timm ResNet into the convolution that feeds it; returns how many were folded.

    A frozen BN is a per-channel affine map, so conv followed by it is one conv with scaled weights and a bias
    (``torch.nn.utils.fusion.fuse_conv_bn_weights``): the same function up to float rounding, without two
    elementwise passes over every activation (about 7% of the R101c trunk's time on a CPU). Inference only (the
    BN statistics become part of the weights); the speed task's preparation calls it. The conv feeding ``bnX`` is
    its sibling ``convX`` (the last module of ``convX`` when that is a Sequential, as timm's deep stem), in a
    Sequential the module just before it (timm's downsample)."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights
    from torchvision.ops.misc import FrozenBatchNorm2d  # the class timm's freeze_batch_norm_2d puts in

    folded = 0
    for parent in list(body.modules()):
        children = list(parent.named_children())
        for i, (name, bn) in enumerate(children):
            if not isinstance(bn, FrozenBatchNorm2d):
                continue
            if isinstance(parent, nn.Sequential):
                conv = children[i - 1][1] if i > 0 else None
            else:
                conv = getattr(parent, "conv" + name[2:], None) if name.startswith("bn") else None
                if isinstance(conv, nn.Sequential):
                    conv = conv[-1]
            if not isinstance(conv, nn.Conv2d):
                raise ValueError(f"cannot tell which convolution feeds the frozen BN {type(parent).__name__}.{name} "
                                 "(not a timm ResNet layout): time this backbone with the speed option "
                                 "fold_norms: false.")
            conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                          bn.eps, bn.weight, bn.bias)
            conv.weight.requires_grad_(False)
            conv.bias.requires_grad_(False)
            setattr(parent, name, nn.Identity())
            folded += 1
    return folded


def freeze_stages(body: nn.Module, freeze_at: int) -> None:
    """detectron2 FREEZE_AT: 1 freezes the stem, k >= 2 also res2..res(k) (requires_grad off)."""
    if freeze_at <= 0:
        return
    frozen: list[nn.Module] = [m for name, m in body.named_children() if not name.startswith("layer")]
    frozen += [getattr(body, name) for name in STAGES[: max(0, freeze_at - 1)]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


@functools.lru_cache(maxsize=32)
def channel_constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1,C,1,1) tensor of per-channel constants, made once per device and dtype: building it from the Python
    list on every call would copy host memory to the GPU inside the timed call (and cannot be captured in a CUDA
    graph). Made outside inference mode, so that training may use it too."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.tensor(values, device=device, dtype=dtype).view(1, -1, 1, 1)


def normalise_images(images: torch.Tensor, cfg: MaskFormerConfig) -> torch.Tensor:
    """0-255 RGB (B,3,H,W) -> (x - mean) / std with the ImageNet statistics of METHOD_SPEC 1."""
    mean = channel_constant(tuple(cfg.pixel_mean), images.device, images.dtype)
    std = channel_constant(tuple(cfg.pixel_std), images.device, images.dtype)
    return (images - mean) / std


def pad_to_divisible(images: torch.Tensor, divisor: int = 32, value: float = 0.0) -> torch.Tensor:
    """Pad (B,C,H,W) at the bottom/right to a multiple of `divisor` (MaskFormer SIZE_DIVISIBILITY, zeros after
    normalisation as detectron2's ImageList does)."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph == 0 and pw == 0:
        return images
    return nn.functional.pad(images, (0, pw, 0, ph), value=value)
