"""The one-pass pipeline shared by baseline, baseline+, +PS, +CAL and DeOP (paper Sec. 3-4, METHOD_SPEC 4-8).

The image goes once through the frozen proposal network (masks only) and once through the frozen CLIP ViT
(dense features, with visual prompts and patch severance as the spec says); each proposal's embedding is
pooled from the CLIP grid (mask pooling, or CAL's anchor heatmaps) and classified by cosine x100 against the
text embeddings and a void embedding. Semantic map = sum_q softmax-without-void(q) * sigmoid mask(q).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.api import Timer, Vocabulary, no_timer

from ..components.anchors import masks_to_grid
from ..components.attention_rules import rules_for
from ..components.clip_dense import DenseCLIP
from ..components.losses import deop_segmentation_loss
from ..components.proposals import MaskFormer, class_logits, normalise_images, semantic_inference
from ..spec import MethodSpec
from .common import ProposalPipeline


class OnePassSegmenter(ProposalPipeline):
    """Frozen MaskFormer + frozen CLIP (+ prompts, PS) + pooling head + text classifier."""

    timing_modules = ("dense", "maskformer")

    def __init__(self, spec: MethodSpec, clip_model: nn.Module, maskformer: MaskFormer, text: nn.Module,
                 void_embedding: torch.Tensor):
        visual = spec.visual_prompt == "add"
        dense = DenseCLIP(clip_model, attention_rules=rules_for(spec.ps, spec),
                          prompt_layers=spec.prompt_layers if visual else (), input_prompt=visual,
                          input_normalisation=spec.input_normalisation)
        super().__init__(spec, "dense", dense, maskformer, text)
        if text.ctx is not None:
            text.ctx.requires_grad_(spec.text_prompt == "learnable")
        self.void_embedding = nn.Parameter(void_embedding.detach().clone(), requires_grad=spec.trains_head)
        dim = int(void_embedding.shape[0])
        queries = maskformer.cfg.num_queries
        # the CAL head (components/cal_heads.py; None without CAL), then the pooling used without one (a frozen
        # part: no parameters)
        self.head: nn.Module | None = spec.build_part("cal").build(dim, queries)
        self.pooling = spec.build_part("pooling")

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
                pooled = self.pooling.pool(dense.patch_features, masks)
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
    def predict_batch(self, images: Sequence[torch.Tensor], vocab: Vocabulary, *, max_size: int = 2560,
                      timer: Timer = no_timer) -> list[torch.Tensor]:
        """Several images in one forward (throughput mode): padded together, each scored at its own size. One-pass
        methods have no seen/unseen calibration (METHOD_SPEC 8, Inference): ``vocab.seen`` is not read."""
        self.counts = {}
        with timer("preprocess"):
            resized, padded = self.preprocess(images, max_size)
        logits, mask_logits = self.classify(padded, vocab.names, timer)
        with timer("postprocess"):
            return [semantic_inference(logits[i], mask_logits[i], tuple(r.shape[-2:]), tuple(im.shape[-2:]),
                                       tuple(padded.shape[-2:]))
                    for i, (r, im) in enumerate(zip(resized, images))]

    @torch.no_grad()
    def prepare_vocabulary(self, vocab: Vocabulary) -> bool:
        """The class names' text embeddings, as `classify` asks for them (kept by the text encoder's cache)."""
        self.text(list(vocab.names))
        return True
