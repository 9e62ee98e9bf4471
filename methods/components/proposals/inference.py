"""Semantic inference from mask classification (METHOD_SPEC 3 step 5, section 8 "Inference").

softmax over K+1, drop the void column (no renormalisation); mask logits bilinearly upsampled to the padded
input, cropped to the un-padded image, sigmoid; S(c) = sum_q p(q,c) m_q (einsum); bilinear resize to the
output (original image) size. The caller takes the argmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_probs_without_void(class_logits: torch.Tensor) -> torch.Tensor:
    """(..., K+1) logits -> (..., K) softmax probabilities with the void column dropped afterwards."""
    return class_logits.float().softmax(-1)[..., :-1]


def mask_probs_at_image(mask_logits: torch.Tensor, image_size: tuple[int, int],
                        padded_size: tuple[int, int] | None = None) -> torch.Tensor:
    """(B,Q,h,w) mask logits -> (B,Q,H,W) sigmoid probabilities on the un-padded input image.

    `padded_size` is the size of the (padded) tensor that went into the network, default 4x the mask size
    (the stride-4 mask features); `image_size` is the un-padded (resized) image inside it.
    """
    if padded_size is None:
        padded_size = (mask_logits.shape[-2] * 4, mask_logits.shape[-1] * 4)
    up = F.interpolate(mask_logits.float(), size=padded_size, mode="bilinear", align_corners=False)
    # in place: `up` is ours, and a second (B,Q,H,W) buffer costs a fresh allocation (~35 M floats at 512x704)
    return up.sigmoid_()[..., : image_size[0], : image_size[1]]


def combine_semantic(class_probs: torch.Tensor, mask_probs: torch.Tensor,
                     output_size: tuple[int, int] | None = None) -> torch.Tensor:
    """(B,Q,K) class probabilities x (B,Q,H,W) mask probabilities -> (B,K,H_out,W_out) semantic scores (fp32,
    also under autocast).

    The bilinear resize is linear per channel, so resize(sum_q p_qc m_q) = sum_q p_qc resize(m_q): with fewer
    masks than classes (100 proposals, 171 COCO-Stuff classes) the masks are resized instead of the scores,
    the same result up to float rounding for less work."""
    with torch.autocast(mask_probs.device.type, enabled=False):
        if (output_size is not None and tuple(output_size) != tuple(mask_probs.shape[-2:])
                and mask_probs.shape[1] < class_probs.shape[-1]):
            mask_probs = F.interpolate(mask_probs.float(), size=output_size, mode="bilinear", align_corners=False)
        semseg = torch.einsum("bqc,bqhw->bchw", class_probs.float(), mask_probs.float())
        if output_size is not None and tuple(output_size) != tuple(semseg.shape[-2:]):
            semseg = F.interpolate(semseg, size=output_size, mode="bilinear", align_corners=False)
    return semseg


def semantic_inference(class_logits: torch.Tensor, mask_logits: torch.Tensor, image_size: tuple[int, int],
                       output_size: tuple[int, int] | None = None,
                       padded_size: tuple[int, int] | None = None) -> torch.Tensor:
    """(B,Q,K+1) class logits and (B,Q,h,w) mask logits -> (B,K,H_out,W_out) scores (unbatched inputs
    (Q,K+1), (Q,h,w) give (K,H_out,W_out)). `output_size` None keeps `image_size`."""
    unbatched = class_logits.dim() == 2
    if unbatched:
        class_logits, mask_logits = class_logits[None], mask_logits[None]
    out = combine_semantic(class_probs_without_void(class_logits),
                           mask_probs_at_image(mask_logits, image_size, padded_size), output_size)
    return out[0] if unbatched else out
