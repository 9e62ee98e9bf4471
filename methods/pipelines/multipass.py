"""SimBaseline's multi-pass pipeline (METHOD_SPEC 3): proposals classified by the MaskFormer's own text
classifier *and* by CLIP on every non-empty masked crop, fused by the geometric ensemble.

N' (the number of CLIP passes) = the proposals whose binarised mask is non-empty: no score threshold, no top-k.
The crops go through CLIP in batched calls: ``crop_chunk`` crops per call (1 is the sequential form); unset, all
in one call on a GPU and `CPU_CROP_CHUNK` per call on a CPU, where a batch of 8 crops (1,576 tokens) keeps its
activations cache-sized and the crop pass 12-16% faster than one batch of 100 (ViT-B/16, 2 threads), with the
same numbers (bit for bit there; a matmul's kernel may change with the batch, so in general to float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.api import Timer, Vocabulary, no_timer

from ..components.clip_dense import DenseCLIP
from ..components.proposals import (
    MaskFormer,
    class_logits,
    class_probs_without_void,
    combine_semantic,
    mask_probs_at_image,
    normalise_images,
)
from ..components.regions import clip_region_probs, ensemble, region_crops, scatter_to_queries
from ..spec import MethodSpec
from .common import ProposalPipeline

CPU_CROP_CHUNK = 8


class CropEncoder(nn.Module):
    """CLIP's plain image path on normalised crops at its native size -> (N, D) L2-normalised embeddings: a
    module of its own so that the speed task's ``compile: true`` compiles SimBaseline's CLIP passes too."""

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        self.dense = DenseCLIP(clip_model)  # only encode_crops is used: plain frozen CLIP

    @property
    def crop_size(self) -> int:
        return int(self.dense.visual.image_size[0])

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.dense.encode_crops(crops, normalised=True)


class MultiPassSegmenter(ProposalPipeline):
    timing_modules = ("maskformer", "crop_encoder")

    def __init__(self, spec: MethodSpec, clip_model: nn.Module, maskformer: MaskFormer, text: nn.Module,
                 void_embedding: torch.Tensor):
        super().__init__(spec, "crop_encoder", CropEncoder(clip_model), maskformer, text)
        if text.ctx is not None:
            text.ctx.requires_grad_(False)
        self.register_buffer("void_embedding", void_embedding.detach().clone())

    def trainable_parameters(self) -> list[str]:
        return []

    @property
    def crop_chunk(self) -> int | None:
        """Crops per CLIP call: the spec's ``crop_chunk``, else `CPU_CROP_CHUNK` on a CPU, all at once elsewhere."""
        if self.spec.crop_chunk is not None:
            return self.spec.crop_chunk
        return CPU_CROP_CHUNK if self.device.type == "cpu" else None

    @torch.no_grad()
    def prepare_vocabulary(self, vocab: Vocabulary) -> bool:
        """The class names' text embeddings, as `predict_batch` asks for them (kept by the text encoder's cache)."""
        self.text(list(vocab.names))
        return True

    @torch.no_grad()
    def predict_batch(self, images: Sequence[torch.Tensor], vocab: Vocabulary, *, max_size: int = 2560,
                      timer: Timer = no_timer) -> list[torch.Tensor]:
        """Several images at once (throughput mode): one proposal forward, and the crops of all images in one
        CLIP call (``crop_chunk`` bounds it). ``vocab.seen`` marks the classes that get the seen exponent; None
        (cross-dataset) treats every class as unseen, as the official code does. ``vocab.dataset`` picks lambda.
        ``counts["crops"]``: N' (CLIP passes) of each image."""
        device = self.device
        with timer("preprocess"):
            resized, padded = self.preprocess(images, max_size)
        with timer("proposals"):
            out = self.maskformer(normalise_images(padded, self.maskformer.cfg))
        with timer("text"):
            text = self.text(list(vocab.names))
        with timer("head"):
            p_mask = class_probs_without_void(class_logits(out["pred_embeddings"], text, self.void_embedding))
            mask_probs = [mask_probs_at_image(out["pred_masks"][i:i + 1], tuple(r.shape[-2:]),
                                              tuple(padded.shape[-2:]))[0] for i, r in enumerate(resized)]
        with timer("crops"):
            cropped = [region_crops(r.float(), m, self.spec.mask_threshold, size=self.crop_encoder.crop_size)
                       for r, m in zip(resized, mask_probs)]
        crops = [int(keep.numel()) for _, keep in cropped]
        self.counts = {"crops": crops}
        with timer("clip"):
            p_clip_all = clip_region_probs(self.crop_encoder, torch.cat([c for c, _ in cropped]), text,
                                           self.void_embedding, chunk_size=self.crop_chunk)
        with timer("postprocess"):
            lam = self.spec.lam(vocab.dataset) if vocab.dataset else self.spec.default_lambda
            seen = None if vocab.seen is None else torch.tensor(vocab.seen, dtype=torch.bool, device=device)
            results = []
            for i, (p_clip, (_, keep)) in enumerate(zip(p_clip_all.split(crops), cropped)):
                p_clip, valid = scatter_to_queries(p_clip, keep, p_mask.shape[1])
                probs = ensemble(p_mask[i], p_clip, seen, lam, valid)
                results.append(combine_semantic(probs[None], mask_probs[i][None], tuple(images[i].shape[-2:]))[0])
        return results
