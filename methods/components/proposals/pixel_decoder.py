"""MaskFormer's `BasePixelDecoder`: an FPN over res2..res5 giving stride-4 mask features (METHOD_SPEC 1).

res5 -> 3x3 conv; every finer level: 1x1 lateral + nearest-upsampled top-down sum -> 3x3 conv; all with
GroupNorm(32) and no conv bias (detectron2 drops the bias when a norm follows), ReLU after the 3x3 convs only;
a final 3x3 conv (with bias) maps to `mask_dim`. Weights use detectron2's c2_xavier_fill.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def c2_xavier_fill(module: nn.Module) -> None:
    """detectron2's `c2_xavier_fill`: kaiming-uniform with a=1 (Caffe2's XavierFill), zero bias."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0)


def _conv_gn(c_in: int, c_out: int, kernel: int, groups: int, relu: bool) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    c2_xavier_fill(conv)
    layers: list[nn.Module] = [conv, nn.GroupNorm(groups, c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FPNPixelDecoder(nn.Module):
    """features [res2, res3, res4, res5] -> mask features (B, mask_dim, H/4, W/4)."""

    def __init__(self, in_channels: list[int], conv_dim: int = 256, mask_dim: int = 256, gn_groups: int = 32):
        super().__init__()
        self.laterals = nn.ModuleList(
            [_conv_gn(c, conv_dim, 1, gn_groups, relu=False) for c in in_channels[:-1]]
        )
        self.outputs = nn.ModuleList(
            [_conv_gn(c, conv_dim, 3, gn_groups, relu=True) for c in [conv_dim] * (len(in_channels) - 1)]
            + [_conv_gn(in_channels[-1], conv_dim, 3, gn_groups, relu=True)]
        )
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 3, padding=1)
        c2_xavier_fill(self.mask_features)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        y = self.outputs[-1](features[-1])
        for level in range(len(features) - 2, -1, -1):
            lateral = self.laterals[level](features[level])
            # size= rather than scale_factor=2: inputs that are not multiples of 32 still line up
            y = lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest")
            y = self.outputs[level](y)
        return self.mask_features(y)
