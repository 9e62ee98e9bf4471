"""FLOSS's formulas as whole tensors, written from yasserben/FLOSS @ccf1d49 (naclip.py `encode_text_features`,
`expert_fusion`; entropy_metric.py per image): the references that methods/components/template_axis.py's
one-expert-at-a-time and once-per-template versions are tested against."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from methods.components.template_axis import TemplateEntropy
from methods.components.text import IMAGENET_TEMPLATES


def expert_text_embeddings(encode: Callable[[list[str]], Tensor], names: Sequence[str],
                           experts: Sequence[Sequence[int]],
                           templates: Sequence[str] = IMAGENET_TEMPLATES) -> tuple[Tensor, Tensor]:
    """encode(prompts) -> (P, D) text features. -> (expert classifiers (E, K, D), default classifier (K, D)),
    each row the renormalised mean of the normalised embeddings of its templates."""
    def classifier(template_ids: Sequence[int]) -> Tensor:
        rows = []
        for name in names:
            feats = F.normalize(encode([templates[t].format(name) for t in template_ids]).float(), dim=-1)
            rows.append(F.normalize(feats.mean(0), dim=-1))
        return torch.stack(rows)

    experts_t = torch.stack([classifier(ids) for ids in experts])
    return experts_t, classifier(range(len(templates)))




def expert_fusion(expert_probs: Tensor, default_probs: Tensor) -> Tensor:
    """expert_probs (E, K, H, W) (expert e = class e), default_probs (K, H, W) -> fused (K, H, W)."""
    n_experts = expert_probs.shape[0]
    idx = torch.arange(n_experts, device=expert_probs.device)
    claims = expert_probs.argmax(1) == idx[:, None, None]  # (E, H, W)
    own = expert_probs[idx, idx]  # (E, H, W): each expert's probability of its own class
    confidence = torch.where(claims, own, torch.full_like(own, -1.0))
    chosen = confidence.argmax(0)  # the first maximum on ties, as the official strict '>' update
    fused = expert_probs.gather(0, chosen[None, None].expand(1, *expert_probs.shape[1:]))[0]
    return torch.where(claims.any(0)[None], fused, default_probs)


def add_image(stats: TemplateEntropy, probs_per_template: Sequence[Tensor]) -> None:
    """probs_per_template[t]: (K, H, W) class probabilities of one image under template t alone."""
    stats.count_image(probs_per_template[0][0].numel())
    for t, probs in enumerate(probs_per_template):
        stats.add_template(t, probs)
