"""Talk2DINO as a segmenter (lorebianchi98/Talk2DINO @4918c2d; `methods/components/talk2dino.py` for the parts).

Per image: the family's resize to the short side (448), sliding windows (448 / 224, TCL's mmseg 0.30 slide); per
window DINOv2-with-registers patches and last-block CLS attention -> sigmoid(cos) with the projected text of the
foreground classes -> background cleaning -> bilinear (align_corners=True) to the window -> PAMR on the window's
raw pixels (10 steps, dilations 1, 2, 4, 8, 12, 24, as `apply_pamr`) -> averaged over windows, resized to the
original size. On a benchmark with a background class, that class's channel is the constant `bg_thresh`; the
argmax decides. Timed stages: preprocess, text, dino, head (scores, cleaning, PAMR), postprocess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.api import Fitted, Timer, TimingPrep, Vocabulary, no_timer

from ..components.clip_trunk import IMAGENET_MEAN_255, IMAGENET_STD_255
from ..components.image_models import Talk2DINOImageModel
from ..components.protocol_resize import resize_image
from ..components.sliding import windows
from ..components.talk2dino import (
    DinoV2Patches,
    background_clean,
    build_dinov2,
    load_projection,
    similarity_scores,
    text_embeddings,
)
from ..components.text import clip_tokenizer
from .dense import protocol_size


class Talk2DINOSegmenter(nn.Module):
    """Frozen DINOv2, CLIP's text tower and the projection (a `harness.api.Segmenter`)."""

    def __init__(self, spec, options: Talk2DINOImageModel, dinov2: nn.Module, clip_model: nn.Module,
                 projection: nn.Module) -> None:
        super().__init__()
        self.spec, self.options = spec, options
        self.decision = options.decision()  # the `bg-thresh` decision part
        self.features = DinoV2Patches(dinov2)
        self.clip_model = clip_model.eval()
        self.projection = projection.eval()
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN_255).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD_255).view(1, 3, 1, 1), persistent=False)
        for p in self.parameters():  # all frozen: nothing trains
            p.requires_grad_(False)
        self.counts: dict[str, list[int]] = {}
        self._text: dict[tuple[str, ...], Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def trainable_parameters(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def prepare_for_timing(self, prep: TimingPrep) -> dict[str, Any]:
        done: dict[str, Any] = {"channels_last": [], "compiled": [], "precision": prep.precision}
        if prep.compile:
            self.features.model = torch.compile(self.features.model)
            done["compiled"].append("dinov2")
        return done

    def encode_text(self, prompts: list[str]) -> Tensor:
        tok = clip_tokenizer()
        length = int(self.clip_model.context_length)
        ids = torch.zeros(len(prompts), length, dtype=torch.long)
        for i, p in enumerate(prompts):
            row = [tok.sot_token_id] + tok.encode(p)[:length - 2] + [tok.eot_token_id]
            ids[i, :len(row)] = torch.tensor(row)
        return self.clip_model.encode_text(ids.to(self.device))

    def text(self, names: Sequence[str]) -> Tensor:
        key = tuple(names)
        if key not in self._text:
            self._text[key] = text_embeddings(self.encode_text, self.projection, list(names)).float()
        return self._text[key]

    @torch.no_grad()
    def predict(self, image: Tensor, vocab: Vocabulary, *, max_size: int = 2560) -> Tensor:
        return self.predict_batch([image], vocab, max_size=max_size)[0]

    @torch.no_grad()
    def prepare_vocabulary(self, vocab: Vocabulary) -> bool:
        """The foreground names' projected text embeddings, as `predict_batch` asks for them (kept in `_text`)."""
        self._foreground_text(vocab)
        return True

    def _foreground_text(self, vocab: Vocabulary) -> tuple[list[int], Tensor]:
        """The indices of the vocabulary's foreground classes and their projected text embeddings (cached)."""
        fg = [i for i in range(len(vocab.names)) if i != vocab.background]
        return fg, self.text([vocab.names[i] for i in fg])

    @torch.no_grad()
    def predict_batch(self, images: Sequence[Tensor], vocab: Vocabulary, *, max_size: int = 2560,
                      timer: Timer = no_timer) -> list[Tensor]:
        del max_size
        spec = self.spec.for_dataset(vocab.dataset)
        with timer("text"):
            fg, text = self._foreground_text(vocab)
        self.counts = {"windows": []}
        out = []
        for image in images:
            scores, n = self._scores(image, spec, text, timer)
            self.counts["windows"].append(n)
            with timer("postprocess"):
                out.append(self.decision.scores(scores, len(vocab.names), vocab.background))
        return out

    def _scores(self, image: Tensor, spec, text: Tensor, timer: Timer) -> tuple[Tensor, int]:
        h0, w0 = image.shape[-2:]
        with timer("preprocess"):
            size = protocol_size(h0, w0, spec.short_side, spec.max_long_side)
            raw = (resize_image(image, size, spec.resize) if size != (h0, w0) else image.float()[None])
            raw = raw.to(self.device)[0]
            x = ((raw[None] - self.pixel_mean) / self.pixel_std)[0]
        boxes = windows(*x.shape[-2:], spec.slide_config(0))
        refinement = spec.refinement()  # the refinement part (PAMR), None when off
        total = x.new_zeros((text.shape[0], *x.shape[-2:]))
        count = x.new_zeros((1, *x.shape[-2:]))
        for b in boxes:
            crop = x[None, :, b.y1:b.y2, b.x1:b.x2]
            with timer("dino"):
                patches, maps = self.features(crop)
            with timer("head"):
                s = similarity_scores(patches, text)
                if self.options.bg_clean:
                    s = background_clean(s, patches, maps, text, self.options.lambda_bg)
                s = F.interpolate(s, size=(b.y2 - b.y1, b.x2 - b.x1), mode="bilinear", align_corners=True)
                if refinement is not None:  # PAMR per window on its raw pixels, as apply_pamr
                    s = refinement.refine(raw[None, :, b.y1:b.y2, b.x1:b.x2], s)
            total[:, b.y1:b.y2, b.x1:b.x2] += s[0]
            count[:, b.y1:b.y2, b.x1:b.x2] += 1
        with timer("postprocess"):
            scores = F.interpolate((total / count)[None], size=(h0, w0), mode="bilinear", align_corners=False)[0]
        return scores, len(boxes)


def build_talk2dino(name: str, spec, env, random_fallback: bool = False) -> Fitted:
    """CLIP (text only), DINOv2 and the projection; with `random_fallback` (timing) missing weights become random
    ones, said so in the record. Random projection weights take the two models' widths."""
    from harness.errors import WeightsError

    from ..components.weights import build_clip
    from ..stages.common import resolve_device

    def load(part: str, make, asked: str):
        try:
            model, info = make(asked)
            weights[part] = info.as_record()
        except WeightsError as exc:
            if not random_fallback:
                raise
            model, info = make("random")
            weights[part] = {**info.as_record(), "fallback": f"asked for {asked!r}: {exc}"}
        return model

    options = spec.image_model_part()  # Talk2DINO's options (components/image_models.py)
    weights: dict[str, Any] = {"stages": {}}
    clip_model = load("clip", lambda w: build_clip(spec.clip_arch, w, "cpu", seed=env.seed), spec.clip_weights)
    dinov2 = load("dinov2", lambda w: build_dinov2(options.dinov2_arch, w, seed=env.seed), options.dinov2_weights)
    widths = (int(clip_model.text_projection.shape[-1]), int(dinov2.embed_dim))
    projection = load("projection", lambda w: load_projection(w, *widths, seed=env.seed), options.projection_weights)
    segmenter = Talk2DINOSegmenter(spec, options, dinov2, clip_model, projection).to(resolve_device(env.device))
    return Fitted(name=name, segmenter=segmenter.eval(), weights=weights, stages={}, spec=spec)
