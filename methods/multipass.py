"""SimBaseline's multi-pass pipeline (METHOD_SPEC 3): proposals classified by the MaskFormer's own text
classifier *and* by CLIP on every non-empty masked crop, fused by the geometric ensemble.

N' (the number of CLIP passes) = the proposals whose binarised mask is non-empty: no score threshold, no top-k.
The crops go through CLIP in one batched call (``crop_chunk`` bounds memory; 1 is the sequential form).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.data.transforms import resize_shortest_edge

from .components.clip_dense import DenseCLIP
from .components.proposals import (
    MaskFormer,
    class_logits,
    class_probs_without_void,
    combine_semantic,
    mask_probs_at_image,
    normalise_images,
)
from .components.regions import clip_region_probs, ensemble, region_crops, scatter_to_queries
from .onepass import ProposalMasks, Timer, no_timer, pad_with_mean
from .spec import MethodSpec


class MultiPassSegmenter(ProposalMasks, nn.Module):
    def __init__(self, spec: MethodSpec, clip_model: nn.Module, maskformer: MaskFormer, text: nn.Module,
                 void_embedding: torch.Tensor):
        super().__init__()
        self.spec = spec
        self.dense = DenseCLIP(clip_model)  # only encode_crops is used: plain frozen CLIP
        self.maskformer = maskformer.eval()
        for p in self.maskformer.parameters():
            p.requires_grad_(False)
        self.text = text
        if text.ctx is not None:
            text.ctx.requires_grad_(False)
        self.register_buffer("void_embedding", void_embedding.detach().clone())
        self.last_crops: list[int] = []  # N' of each image of the last call, for the records

    def trainable_parameters(self) -> list[str]:
        return []

    @torch.no_grad()
    def predict(self, image: torch.Tensor, class_names: Sequence[str], **kwargs) -> torch.Tensor:
        """image (3,H0,W0) uint8 -> scores (K,H0,W0). ``seen`` (K,) bool marks the classes that get the seen
        exponent; None (cross-dataset) treats every class as unseen, as the official code does."""
        return self.predict_batch([image], class_names, **kwargs)[0]

    @torch.no_grad()
    def predict_batch(self, images: Sequence[torch.Tensor], class_names: Sequence[str], *, max_size: int = 2560,
                      seen: torch.Tensor | None = None, dataset: str | None = None, timer: Timer = no_timer,
                      ) -> list[torch.Tensor]:
        """Several images at once (throughput mode): one proposal forward, and the crops of all images in one
        CLIP call (``crop_chunk`` bounds it)."""
        device = self.void_embedding.device
        with timer("preprocess"):
            resized = [resize_shortest_edge(im.to(device), None, self.spec.test_short_side, max_size)[0]
                       for im in images]
            padded = pad_with_mean([r.float() for r in resized], self.maskformer.cfg.pixel_mean)
        with timer("proposals"):
            out = self.maskformer(normalise_images(padded, self.maskformer.cfg))
        with timer("text"):
            text = self.text(list(class_names))
        with timer("head"):
            p_mask = class_probs_without_void(class_logits(out["pred_embeddings"], text, self.void_embedding))
            mask_probs = [mask_probs_at_image(out["pred_masks"][i:i + 1], tuple(r.shape[-2:]),
                                              tuple(padded.shape[-2:]))[0] for i, r in enumerate(resized)]
        with timer("crops"):
            cropped = [region_crops(r.float(), m, self.spec.mask_threshold, size=int(self.dense.visual.image_size[0]))
                       for r, m in zip(resized, mask_probs)]
        self.last_crops = [int(keep.numel()) for _, keep in cropped]
        with timer("clip"):
            p_clip_all = clip_region_probs(lambda c: self.dense.encode_crops(c, normalised=True),
                                           torch.cat([c for c, _ in cropped]), text, self.void_embedding,
                                           chunk_size=self.spec.crop_chunk)
        with timer("postprocess"):
            lam = self.spec.lam(dataset) if dataset else self.spec.default_lambda
            seen = None if seen is None else seen.to(device)
            results = []
            for i, (p_clip, (_, keep)) in enumerate(zip(p_clip_all.split(self.last_crops), cropped)):
                p_clip, valid = scatter_to_queries(p_clip, keep, p_mask.shape[1])
                probs = ensemble(p_mask[i], p_clip, seen, lam, valid)
                results.append(combine_semantic(probs[None], mask_probs[i][None], tuple(images[i].shape[-2:]))[0])
        return results
