"""The proposal network: backbone + FPN pixel decoder + DETR predictor, classified against text embeddings.

METHOD_SPEC 1: the class head outputs a 512-d embedding; logits = 100 * cos(embedding, [text_k ; void]) with a
learned non-object ("void") embedding initialised N(0, E^-0.5) and a fixed temperature 100.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import ResNetBackbone
from .config import MaskFormerConfig
from .d2_weights import load_backbone_weights
from .pixel_decoder import FPNPixelDecoder
from .predictor import TransformerPredictor


class MaskFormer(nn.Module):
    """`forward(images_normalised (B,3,H,W))` -> dict(pred_embeddings (B,Q,E), pred_masks (B,Q,H/4,W/4) logits,
    aux_outputs: one dict of the same two keys per earlier decoder layer (empty unless asked for, and without deep
    supervision)).

    Input: ImageNet-normalised RGB (see `normalise_images`), padded as the caller likes (MaskFormer pads to 32).
    `weights_info` says what the backbone was initialised from, for the record.
    """

    def __init__(self, cfg: MaskFormerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNetBackbone(cfg)
        # "scratch": randomly initialised, then trained with the rest (not a frozen random part)
        self.weights_info: dict[str, str] = {"backbone": "scratch"}
        if cfg.pretrained_backbone is not None:
            info = load_backbone_weights(self.backbone.body, cfg.pretrained_backbone)
            self.weights_info = {"backbone": info["file"], "backbone_sha256": info["sha256"]}
        self.pixel_decoder = FPNPixelDecoder(self.backbone.out_channels, cfg.conv_dim, cfg.mask_dim, cfg.gn_groups)
        self.predictor = TransformerPredictor(cfg, self.backbone.out_channels[-1])
        self.void_embedding = nn.Parameter(torch.randn(cfg.embed_dim) * cfg.embed_dim**-0.5)

    def forward(self, images: torch.Tensor, aux_outputs: bool = False) -> dict[str, Any]:
        """``aux_outputs``: also return the earlier decoder layers' outputs (deep supervision: the training loss
        asks for them; inference does not, and they are then not computed)."""
        aux_outputs = aux_outputs and self.cfg.deep_supervision
        features = self.backbone(images)
        mask_features = self.pixel_decoder(features)
        embeddings, masks = self.predictor(features[-1], mask_features, all_layers=aux_outputs)
        aux = []
        if aux_outputs:
            aux = [{"pred_embeddings": e, "pred_masks": m} for e, m in zip(embeddings[:-1], masks[:-1])]
        return {"pred_embeddings": embeddings[-1], "pred_masks": masks[-1], "aux_outputs": aux}

    def add_class_logits(
        self, outputs: dict[str, Any], text_embeddings: torch.Tensor, temperature: float = 100.0
    ) -> dict[str, Any]:
        """A copy of `outputs` with `pred_logits` (B,Q,K+1) in it and in each aux dict (for SetCriterion)."""

        def with_logits(d: dict[str, Any]) -> dict[str, Any]:
            logits = class_logits(d["pred_embeddings"], text_embeddings, self.void_embedding, temperature)
            return {**d, "pred_logits": logits}

        out = with_logits(outputs)
        out["aux_outputs"] = [with_logits(a) for a in outputs.get("aux_outputs", [])]
        return out


def class_logits(
    pred_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    void_embedding: torch.Tensor,
    temperature: float = 100.0,
) -> torch.Tensor:
    """(..., E) embeddings vs K text embeddings and the void one -> (..., K+1) = temperature * cosine.

    Everything is L2-normalised first ([S] `zero_shot_mask_former_model.py` L170-174, adapter.py L64-70);
    the void logit is last.
    """
    classifier = torch.cat([F.normalize(text_embeddings, dim=-1), F.normalize(void_embedding[None], dim=-1)])
    return temperature * F.normalize(pred_embeddings, dim=-1) @ classifier.to(pred_embeddings.dtype).t()


def maskformer_param_groups(
    model: nn.Module, lr: float = 1e-4, weight_decay: float = 1e-4, backbone_multiplier: float = 0.1
) -> list[dict[str, Any]]:
    """AdamW groups of the official recipe (METHOD_SPEC 1): LR x0.1 for any module whose name contains
    "backbone", no weight decay for norm layers and nn.Embedding; frozen parameters are left out."""
    norm_types = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.Embedding)
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{module_name}.{name}" if module_name else name
            groups.append({
                "params": [p],
                "lr": lr * (backbone_multiplier if "backbone" in full else 1.0),
                "weight_decay": 0.0 if isinstance(module, norm_types) else weight_decay,
                "name": full,
            })
    return groups
