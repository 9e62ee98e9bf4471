"""A method with a pipeline of its own, written against `harness.api` alone: no proposals, no training. CLIP sees
the image once; every patch feature is classified by cosine x100 against the text embeddings, and the class
probabilities are resized to the image. (The shape of the training-free family; a test example, not a method.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.api import (
    Fitted,
    MethodEnv,
    SegmentationMethod,
    Segmenter,
    Timer,
    TimingPrep,
    Vocabulary,
    no_timer,
)
from harness.data.transforms import resize_shortest_edge
from harness.errors import ConfigError
from methods.components.clip_dense import DenseCLIP
from methods.components.text import TextEncoder
from methods.components.weights import build_clip, weights_problem


class PatchProbeSegmenter(nn.Module, Segmenter):
    """A `harness.api.Segmenter`: its members are the whole of what the tasks see. Subclassing the protocol (after
    nn.Module) inherits the defaults of its optional members (`prepare_vocabulary`)."""

    def __init__(self, clip_model: nn.Module, short_side: int, templates: str) -> None:
        super().__init__()
        self.dense = DenseCLIP(clip_model, input_normalisation="clip")
        self.text = TextEncoder(clip_model, mode="templates", templates=templates)
        self.short_side = short_side
        self.counts: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return self.dense.pixel_mean.device

    @torch.no_grad()
    def predict(self, image: torch.Tensor, vocab: Vocabulary, *, max_size: int = 2560) -> torch.Tensor:
        return self.predict_batch([image], vocab, max_size=max_size)[0]

    @torch.no_grad()
    def predict_batch(self, images: Sequence[torch.Tensor], vocab: Vocabulary, *, max_size: int = 2560,
                      timer: Timer = no_timer) -> list[torch.Tensor]:
        with timer("text"):
            text = self.text(list(vocab.names)).float()
        out = []
        for image in images:
            with timer("preprocess"):
                resized = resize_shortest_edge(image.to(self.device), None, self.short_side, max_size)[0]
            with timer("clip"):
                features = self.dense(resized.float()[None]).patch_features
            with timer("head"):
                probs = (100 * torch.einsum("bdhw,kd->bkhw", features.float(), text)).softmax(1)
                out.append(F.interpolate(probs, size=tuple(image.shape[-2:]), mode="bilinear",
                                         align_corners=False)[0])
        self.counts = {"windows": [1] * len(images)}  # one CLIP window per image (sliding windows would count)
        return out

    def prepare_for_timing(self, prep: TimingPrep) -> dict[str, Any]:
        done: dict[str, Any] = {"channels_last": [], "compiled": [], "precision": prep.precision}
        if prep.compile:
            self.dense = torch.compile(self.dense)
            done["compiled"].append("dense")
        return done


class PatchProbe(SegmentationMethod):
    """The plugin (a `harness.api.SegmentationMethod`): options, preflight, build."""

    name = "test-patch-probe"
    description = "tests' example: every CLIP patch against the text, no proposals, training-free"
    kind = "proposal-free"
    OPTIONS: dict[str, Any] = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "test_short_side": 64,
                               "templates": "single"}

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ConfigError(f"method {self.name!r}: unknown option(s) {unknown}; known: {', '.join(self.OPTIONS)}.")
        spec = {**self.OPTIONS, **options}
        for key, default in self.OPTIONS.items():
            if not isinstance(spec[key], type(default)):
                raise ConfigError(f"method {self.name!r}: option {key} must be {type(default).__name__}.")
        return spec

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        spec = self.resolve(options)
        problem = weights_problem(spec["clip_arch"], spec["clip_weights"])
        return [problem] if problem else []

    def fit(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        return self.build_untrained(options, env)  # training-free: nothing to fit

    def build_untrained(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        spec = self.resolve(options)
        clip_model, info = build_clip(spec["clip_arch"], spec["clip_weights"], "cpu", seed=env.seed)
        device = "cuda" if env.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        segmenter = PatchProbeSegmenter(clip_model, spec["test_short_side"], spec["templates"]).to(device).eval()
        return Fitted(name=self.name, segmenter=segmenter, weights={"clip": info.as_record()}, spec=spec)


PATCH_PROBE = PatchProbe()
