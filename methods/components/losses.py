"""DeOP's training loss on the assembled semantic map, without Hungarian matching (METHOD_SPEC 7).

1. M = sigmoid(bilinear(mask logits -> label size)); p = softmax over K+1 of the class logits.
2. S(c, x) = sum_n M_n(x) p_n(c) for every channel, void included.
3. Calibrate: S' = sigmoid(sigma * S - sigma) (sigma = 3: S=1 -> 0.5).
4. Targets: one-hot over K+1; ignore pixels (unlabelled, padding, unseen) are positives of the void channel.
5. Focal BCE on S' (alpha 0.25 for positives / 0.75 negatives, gamma 2, log clamped to [1e-4, 1-1e-4]),
   mean over B x (K+1) x H x W.
6. Dice per image with the void channel zeroed in prediction and target: 1 - (2 sum st + 1)/(sum s + sum t + 1).
Total = focal_weight * focal + dice_weight * dice (deop_train.sh: 2.0 and 0.8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def assembled_map(class_logits: torch.Tensor, mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,Q,K+1) logits, (B,Q,h,w) mask logits -> S (B,K+1,H,W)."""
    masks = F.interpolate(mask_logits.float(), size=size, mode="bilinear", align_corners=False).sigmoid()
    probs = class_logits.float().softmax(-1)
    return torch.einsum("bqc,bqhw->bchw", probs, masks)


def deop_segmentation_loss(class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                           ignore_index: int = 255, focal_weight: float = 2.0, dice_weight: float = 0.8,
                           sigma: float = 3.0) -> dict[str, torch.Tensor]:
    b, _, k1 = class_logits.shape
    s = torch.sigmoid(sigma * assembled_map(class_logits, mask_logits, tuple(labels.shape[-2:])) - sigma)
    target_ids = torch.where(labels == ignore_index, torch.full_like(labels, k1 - 1), labels)
    if bool((target_ids >= k1).any()) or bool((target_ids < 0).any()):
        raise ValueError(f"labels hold ids outside [0, {k1 - 1}) and the ignore value {ignore_index}")
    target = F.one_hot(target_ids, k1).permute(0, 3, 1, 2).float()

    p = s.clamp(1e-4, 1 - 1e-4)
    pos = -0.25 * (1 - p).pow(2) * p.log() * target
    neg = -0.75 * p.pow(2) * (1 - p).log() * (1 - target)
    focal = (pos + neg).mean()

    s_real, t_real = s[:, :-1].flatten(1), target[:, :-1].flatten(1)
    dice = 1 - (2 * (s_real * t_real).sum(1) + 1) / (s_real.sum(1) + t_real.sum(1) + 1)
    return {"loss_focal": focal_weight * focal, "loss_dice": dice_weight * dice.mean()}
