"""MaskFormer's set criterion with the official weights (METHOD_SPEC 1; [S] `modeling/criterion.py`).

loss_ce: cross-entropy over K+1 with the no-object class weighted `eos_coef` 0.1 (weight 1); loss_mask: sigmoid
focal (alpha .25, gamma 2, mean over pixels, summed over matched masks / num_masks) (weight 20); loss_dice
(weight 1). Predicted masks are bilinearly upsampled to the ground-truth size; num_masks is the number of
ground-truth segments, averaged over processes and clamped at 1. Deep supervision repeats all three on each
auxiliary decoder layer under the suffix `_i`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .matcher import HungarianMatcher


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """(M,P) matched mask logits vs targets -> sum over masks of the per-pixel mean focal loss / num_masks."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_masks


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """(M,P) matched mask logits vs targets -> sum of 1 - (2|s.t|+1)/(|s|+|t|+1) over masks / num_masks."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def _stack_padded(masks: list[torch.Tensor]) -> torch.Tensor:
    """Ground-truth masks of several images (T_i,H_i,W_i) -> (sum T_i, H_max, W_max), zero padded."""
    h = max(m.shape[-2] for m in masks)
    w = max(m.shape[-1] for m in masks)
    return torch.cat([F.pad(m.float(), (0, w - m.shape[-1], 0, h - m.shape[-2])) for m in masks])


class SetCriterion(nn.Module):
    """`forward(outputs, targets)` -> dict of unweighted terms (loss_ce, loss_mask, loss_dice and
    loss_ce_0, ... for the aux layers); `weighted_total(losses)` applies `weight_dict`.

    `outputs` needs pred_logits (B,Q,K+1), pred_masks (B,Q,h,w) and optionally aux_outputs with the same keys
    (see `MaskFormer.add_class_logits`); `targets` are `targets_from_semantic` dicts.
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher | None = None, eos_coef: float = 0.1,
                 ce_weight: float = 1.0, mask_weight: float = 20.0, dice_weight: float = 1.0,
                 num_aux: int = 5):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher(ce_weight, mask_weight, dice_weight)
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)
        base = {"loss_ce": ce_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        self.weight_dict = dict(base)
        for i in range(num_aux):
            self.weight_dict.update({f"{k}_{i}": v for k, v in base.items()})

    def _num_masks(self, targets: list[dict[str, torch.Tensor]], device: torch.device) -> float:
        num = torch.tensor([float(sum(len(t["labels"]) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num)
            num = num / dist.get_world_size()
        return max(num.item(), 1.0)

    def _single(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]], num_masks: float
                ) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]
        indices = self.matcher(outputs, targets)
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for src, _ in indices])
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        matched_labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
        target_classes[batch_idx.to(logits.device), src_idx.to(logits.device)] = matched_labels
        loss_ce = F.cross_entropy(logits.float().transpose(1, 2), target_classes,
                                  self.empty_weight.to(logits.device))

        device = outputs["pred_masks"].device
        src_masks = outputs["pred_masks"][batch_idx.to(device), src_idx.to(device)]
        gt = _stack_padded([t["masks"] for t in targets]).to(src_masks.device)
        offsets = torch.cumsum(torch.tensor([0] + [len(t["labels"]) for t in targets[:-1]]), 0)
        tgt_idx = torch.cat([j + offsets[i] for i, (_, j) in enumerate(indices)])
        tgt_masks = gt[tgt_idx.to(device)]
        if len(src_masks) == 0:
            zero = outputs["pred_masks"].sum() * 0.0
            return {"loss_ce": loss_ce, "loss_mask": zero, "loss_dice": zero}
        src_masks = F.interpolate(src_masks[:, None].float(), size=tgt_masks.shape[-2:], mode="bilinear",
                                  align_corners=False)[:, 0].flatten(1)
        tgt_masks = tgt_masks.flatten(1)
        return {
            "loss_ce": loss_ce,
            "loss_mask": sigmoid_focal_loss(src_masks, tgt_masks, num_masks),
            "loss_dice": dice_loss(src_masks, tgt_masks, num_masks),
        }

    def forward(self, outputs: dict[str, Any], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        device = outputs["pred_logits"].device
        num_masks = self._num_masks(targets, device)
        # losses in fp32 even inside an autocast region (sums over all pixels of all masks)
        with torch.autocast(device.type, enabled=False):
            losses = self._single(outputs, targets, num_masks)
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                losses.update({f"{k}_{i}": v for k, v in self._single(aux, targets, num_masks).items()})
        return losses

    def weighted_total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """sum_k weight_dict[k] * losses[k] over the terms present (unknown terms are an error)."""
        unknown = set(losses) - set(self.weight_dict)
        if unknown:
            raise KeyError(f"loss terms without a weight: {sorted(unknown)} (num_aux too small?)")
        return sum(self.weight_dict[k] * v for k, v in losses.items())  # type: ignore[return-value]
