"""The one-pass pipeline shared by baseline, baseline+, +PS, +CAL and DeOP (paper Sec. 3-4, METHOD_SPEC 4-8).

The image goes once through the frozen proposal network (masks only) and once through the frozen CLIP ViT
(dense features, with visual prompts and patch severance as the spec says); each proposal's embedding is
pooled from the CLIP grid (mask pooling, or CAL's anchor heatmaps) and classified by cosine x100 against the
text embeddings and a void embedding. Semantic map = sum_q softmax-without-void(q) * sigmoid mask(q).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.data.transforms import resize_shortest_edge

from .components.anchors import ConvHeatmapDecoder, QueryHeatmapDecoder, mask_pooling, masks_to_grid
from .components.clip_dense import GPS, MPS, CoverageIdentity, DenseCLIP
from .components.proposals import (
    MaskFormer,
    class_logits,
    mask_probs_at_image,
    normalise_images,
    semantic_inference,
)
from .losses import deop_segmentation_loss
from .spec import MethodSpec

Timer = Callable[[str], contextlib.AbstractContextManager]


def no_timer(_: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def attention_rules(spec: MethodSpec) -> dict:
    """Block index (from the end) -> attention rule, as the spec's patch severance asks."""
    if spec.ps == "gps":
        return {-(i + 1): GPS(a) for i, a in enumerate(spec.alpha) if a > 0}
    if spec.ps == "coverage":
        return {-1: CoverageIdentity()}
    if spec.ps == "mps":
        return {-1: MPS()}
    return {}


class ProposalMasks:
    """What both pipelines share: the frozen proposal network's masks for one image at its original size."""

    spec: MethodSpec
    maskformer: MaskFormer

    @torch.no_grad()
    def proposal_masks(self, image: torch.Tensor, *, max_size: int = 2560) -> torch.Tensor:
        """image (3,H0,W0) uint8 -> (Q,H0,W0) sigmoid mask probabilities (test-time resize, as predict)."""
        device = next(self.maskformer.parameters()).device
        h0, w0 = image.shape[-2:]
        resized, _ = resize_shortest_edge(image.to(device), None, self.spec.test_short_side, max_size)
        size = tuple(resized.shape[-2:])
        padded = pad_with_mean([resized.float()], self.maskformer.cfg.pixel_mean)
        mask_logits = self.maskformer(normalise_images(padded, self.maskformer.cfg))["pred_masks"]
        probs = mask_probs_at_image(mask_logits, size, tuple(padded.shape[-2:]))
        return F.interpolate(probs, size=(h0, w0), mode="bilinear", align_corners=False)[0]


class OnePassSegmenter(ProposalMasks, nn.Module):
    """Frozen MaskFormer + frozen CLIP (+ prompts, PS) + pooling head + text classifier."""

    def __init__(self, spec: MethodSpec, clip_model: nn.Module, maskformer: MaskFormer, text: nn.Module,
                 void_embedding: torch.Tensor):
        super().__init__()
        self.spec = spec
        visual = spec.visual_prompt == "add"
        self.dense = DenseCLIP(clip_model, attention_rules=attention_rules(spec),
                               prompt_layers=spec.prompt_layers if visual else (), input_prompt=visual,
                               input_normalisation=spec.input_normalisation)
        self.maskformer = maskformer.eval()
        for p in self.maskformer.parameters():
            p.requires_grad_(False)
        self.text = text
        if text.ctx is not None:
            text.ctx.requires_grad_(spec.text_prompt == "learnable")
        self.void_embedding = nn.Parameter(void_embedding.detach().clone(), requires_grad=spec.trains_head)
        dim = int(void_embedding.shape[0])
        queries = maskformer.cfg.num_queries
        if spec.cal == "query":
            self.head: nn.Module | None = QueryHeatmapDecoder(d_model=dim, nheads=8, dim_ff=2 * dim,
                                                              num_layers=spec.cal_layers, num_queries=queries,
                                                              dropout=spec.cal_dropout)
        elif spec.cal == "conv":
            self.head = ConvHeatmapDecoder(d=dim, num_layers=spec.cal_layers, variant=spec.conv_variant)
        else:
            self.head = None

    def train(self, mode: bool = True) -> OnePassSegmenter:
        super().train(mode)
        self.maskformer.eval()  # frozen: its dropout stays off
        return self

    def trainable_parameters(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    # -- the forward of both training and inference ----------------------------------------------------
    def classify(self, images: torch.Tensor, class_names: Sequence[str], timer: Timer = no_timer):
        """images (B,3,H,W) raw 0-255, already padded -> (class logits (B,Q,K+1), mask logits (B,Q,h,w))."""
        with timer("proposals"), torch.no_grad():
            x = normalise_images(images.float(), self.maskformer.cfg)
            mask_logits = self.maskformer(x)["pred_masks"]
        with timer("clip"):
            if self.spec.input_normalisation == "imagenet":  # the official quirk: CLIP sees MaskFormer's tensor
                dense = self.dense(x, masks=mask_logits, normalised=True)
            else:
                dense = self.dense(images.float(), masks=mask_logits)
        with timer("head"):
            masks = masks_to_grid(mask_logits, dense.grid)
            if self.head is None:
                pooled = mask_pooling(dense.patch_features, masks)
            else:
                pooled, _ = self.head(dense.patch_features, masks)
        with timer("text"):
            text = self.text(list(class_names))
        with timer("head"):
            logits = class_logits(pooled, text, self.void_embedding)
        return logits, mask_logits

    def forward(self, batch) -> dict[str, torch.Tensor]:
        """Stage-3 training step: (images (B,3,H,W) uint8, labels (B,H,W), class names) -> weighted losses."""
        images, labels, class_names = batch
        logits, mask_logits = self.classify(images, class_names)
        return deop_segmentation_loss(logits, mask_logits, labels, ignore_index=255,
                                      focal_weight=self.spec.focal_weight, dice_weight=self.spec.dice_weight,
                                      sigma=self.spec.output_sigma)

    @torch.no_grad()
    def predict(self, image: torch.Tensor, class_names: Sequence[str], **kwargs) -> torch.Tensor:
        """image (3,H0,W0) uint8 -> scores (K,H0,W0) at the original size (argmax gives the label map)."""
        return self.predict_batch([image], class_names, **kwargs)[0]

    @torch.no_grad()
    def predict_batch(self, images: Sequence[torch.Tensor], class_names: Sequence[str], *, max_size: int = 2560,
                      seen: torch.Tensor | None = None, dataset: str | None = None, timer: Timer = no_timer,
                      ) -> list[torch.Tensor]:
        """Several images in one forward (throughput mode): padded together, each scored at its own size."""
        del seen, dataset  # one-pass methods have no seen/unseen calibration (METHOD_SPEC 8, Inference)
        device = self.void_embedding.device
        with timer("preprocess"):
            resized = [resize_shortest_edge(im.to(device), None, self.spec.test_short_side, max_size)[0]
                       for im in images]
            padded = pad_with_mean([r.float() for r in resized], self.maskformer.cfg.pixel_mean)
        logits, mask_logits = self.classify(padded, class_names, timer)
        with timer("postprocess"):
            return [semantic_inference(logits[i], mask_logits[i], tuple(r.shape[-2:]), tuple(im.shape[-2:]),
                                       tuple(padded.shape[-2:]))
                    for i, (r, im) in enumerate(zip(resized, images))]


def pad_with_mean(images: Sequence[torch.Tensor] | torch.Tensor, mean: Sequence[float], divisor: int = 32,
                  ) -> torch.Tensor:
    """Raw images ((3,H,W) each, or a (B,3,H,W) batch) -> one (B,3,H',W') batch padded at the bottom/right to a
    common multiple of ``divisor`` with the pixel mean, so that after normalisation the padding is zero exactly
    as detectron2's ImageList pads the normalised tensor."""
    images = list(images)
    h = max(im.shape[-2] for im in images)
    w = max(im.shape[-1] for im in images)
    h, w = h + (-h) % divisor, w + (-w) % divisor
    out = images[0].new_empty((len(images), 3, h, w))
    out[:] = torch.tensor(mean, device=out.device, dtype=out.dtype).view(1, 3, 1, 1)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = im
    return out
