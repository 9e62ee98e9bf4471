"""MaskFormer's Hungarian matcher (METHOD_SPEC 1; [S] `modeling/matcher.py`).

Per image: cost(q, t) = cost_class * (-softmax(logits_q)[class_t]) + cost_focal * focal(q, t) + cost_dice *
dice(q, t), with the ground-truth masks nearest-resized to the prediction's resolution; solved exactly by
`scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn


def pairwise_sigmoid_focal(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                           gamma: float = 2.0) -> torch.Tensor:
    """(Q,P) logits vs (T,P) binary targets -> (Q,T) focal loss averaged over the P pixels."""
    prob = logits.sigmoid()
    focal_pos = (1 - prob) ** gamma * F.binary_cross_entropy_with_logits(
        logits, torch.ones_like(logits), reduction="none")
    focal_neg = prob**gamma * F.binary_cross_entropy_with_logits(
        logits, torch.zeros_like(logits), reduction="none")
    if alpha >= 0:
        focal_pos = focal_pos * alpha
        focal_neg = focal_neg * (1 - alpha)
    cost = focal_pos @ targets.t() + focal_neg @ (1 - targets).t()
    return cost / logits.shape[1]


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(Q,P) logits vs (T,P) binary targets -> (Q,T) dice loss 1 - (2|s.t|+1)/(|s|+|t|+1)."""
    prob = logits.sigmoid()
    numerator = 2 * prob @ targets.t()
    denominator = prob.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher(nn.Module):
    """`forward(outputs with pred_logits (B,Q,K+1) and pred_masks (B,Q,h,w), targets [dict(labels (T,),
    masks (T,H,W))])` -> per image (query indices, target indices), int64 tensors on the CPU."""

    def __init__(self, cost_class: float = 1.0, cost_focal: float = 20.0, cost_dice: float = 1.0):
        super().__init__()
        self.cost_class = cost_class
        self.cost_focal = cost_focal
        self.cost_dice = cost_dice

    @torch.no_grad()
    def cost_matrix(self, logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                    masks: torch.Tensor) -> torch.Tensor:
        """One image: (Q,K+1) logits, (Q,h,w) mask logits, (T,) labels, (T,H,W) masks -> (Q,T) cost (fp32)."""
        device = mask_logits.device
        # fp32 throughout: the focal cost sums over every pixel and overflows fp16 under autocast
        with torch.autocast(device.type, enabled=False):
            prob = logits.float().softmax(-1)
            cost_class = -prob[:, labels.to(device)]
            tgt = masks.to(device)[:, None].float()
            tgt = F.interpolate(tgt, size=mask_logits.shape[-2:], mode="nearest")[:, 0].flatten(1)
            out = mask_logits.float().flatten(1)
            return (self.cost_class * cost_class + self.cost_focal * pairwise_sigmoid_focal(out, tgt)
                    + self.cost_dice * pairwise_dice(out, tgt))

    @torch.no_grad()
    def forward(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        indices = []
        for b, target in enumerate(targets):
            cost = self.cost_matrix(outputs["pred_logits"][b], outputs["pred_masks"][b],
                                    target["labels"], target["masks"])
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices
