"""What the proposal-based pipelines share: the frozen proposal network, the one test-time preprocessing routine,
the proposals capability (recall), prediction of one image, and the timing hook (`harness.api.Segmenter`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import TimingPrep, Vocabulary
from harness.data.transforms import resize_shortest_edge

from ..components.proposals import MaskFormer, fold_frozen_batch_norm, mask_probs_at_image, normalise_images
from ..spec import MethodSpec


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
    for c, value in enumerate(mean):  # a fill per channel: no host list copied to the device per call
        out[:, c].fill_(value)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = im
    return out


class ProposalPipeline(nn.Module):
    """Base of the one-pass and multi-pass segmenters: a frozen MaskFormer proposes masks, the subclass scores them.

    Subclasses set ``void_embedding`` (a parameter or buffer: where the method computes), implement
    ``predict_batch``, and name in ``timing_modules`` the submodules of their per-image path that the speed task's
    ``compile: true`` compiles (``convolutional`` those that go channels-last)."""

    timing_modules: ClassVar[tuple[str, ...]] = ("maskformer",)
    convolutional: ClassVar[tuple[str, ...]] = ("maskformer",)
    void_embedding: torch.Tensor

    def __init__(self, spec: MethodSpec, clip_name: str, clip: nn.Module, maskformer: MaskFormer,
                 text: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        setattr(self, clip_name, clip)  # registered first: parameter order (and so training) as before the split
        self.maskformer = maskformer.eval()
        for p in self.maskformer.parameters():
            p.requires_grad_(False)
        self.text = text
        self.counts: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return self.void_embedding.device

    def preprocess(self, images: Sequence[torch.Tensor], max_size: int,
                   ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """uint8 images (3,H0,W0) -> (each resized to the test short side, the padded float batch)."""
        resized = [resize_shortest_edge(im.to(self.device), None, self.spec.test_short_side, max_size)[0]
                   for im in images]
        return resized, pad_with_mean([r.float() for r in resized], self.maskformer.cfg.pixel_mean)

    @torch.no_grad()
    def proposal_masks(self, image: torch.Tensor, *, max_size: int = 2560) -> torch.Tensor:
        """image (3,H0,W0) uint8 -> (Q,H0,W0) sigmoid mask probabilities (test-time resize, as predict)."""
        h0, w0 = image.shape[-2:]
        (resized,), padded = self.preprocess([image], max_size)
        mask_logits = self.maskformer(normalise_images(padded, self.maskformer.cfg))["pred_masks"]
        probs = mask_probs_at_image(mask_logits, tuple(resized.shape[-2:]), tuple(padded.shape[-2:]))
        return F.interpolate(probs, size=(h0, w0), mode="bilinear", align_corners=False)[0]

    @torch.no_grad()
    def predict(self, image: torch.Tensor, vocab: Vocabulary, *, max_size: int = 2560) -> torch.Tensor:
        """image (3,H0,W0) uint8 -> scores (K,H0,W0) at the original size (argmax gives the label map)."""
        return self.predict_batch([image], vocab, max_size=max_size)[0]

    def prepare_for_timing(self, prep: TimingPrep) -> dict[str, Any]:
        done: dict[str, Any] = {"channels_last": [], "compiled": [], "precision": prep.precision}
        if prep.fold_norms:  # before channels_last: the folded weights are new tensors
            done["folded_norms"] = {"maskformer": fold_frozen_batch_norm(self.maskformer.backbone.body)}
        if prep.channels_last:
            for name in self.convolutional:
                getattr(self, name).to(memory_format=torch.channels_last)
                done["channels_last"].append(name)
        if prep.compile:
            for name in self.timing_modules:
                setattr(self, name, torch.compile(getattr(self, name)))
                done["compiled"].append(name)
        return done
