"""Optimisers with the official parameter groups.

detectron2's recipes (METHOD_SPEC 1, 8): no weight decay for normalisation layers and ``nn.Embedding``;
a learning-rate multiplier for parameters whose name contains a given substring (``backbone: 0.1``).
Only parameters with ``requires_grad`` are optimised: frozen CLIP never enters an optimiser.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Embedding)


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 lr_multipliers: Mapping[str, float] | None = None) -> list[dict]:
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        mult = 1.0
        for key, value in (lr_multipliers or {}).items():
            if key in name:
                mult = value
        wd = 0.0 if id(param) in no_decay else weight_decay
        groups.setdefault((lr * mult, wd), []).append(param)
    return [{"params": ps, "lr": group_lr, "initial_lr": group_lr, "weight_decay": wd}
            for (group_lr, wd), ps in groups.items()]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                    lr_multipliers: Mapping[str, float] | None = None) -> torch.optim.Optimizer:
    groups = param_groups(model, lr, weight_decay, lr_multipliers)
    if not groups:
        raise ValueError("the model has no trainable parameters; nothing to optimise")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use adamw or sgd")
