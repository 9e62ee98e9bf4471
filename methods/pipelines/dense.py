"""The dense (proposal-free) pipeline of the training-free family (TRAINING_FREE_SPEC 2).

Per image: resize to the short side (long side capped, aspect kept; cv2 on uint8 as mmseg, or torch), normalise
with CLIP's statistics, slide windows (or take the whole image); every window of the image goes to the selected
`coupling` part (components/window_coupling.py). The default, `independent`: per window the image model (the
`image_model` part: the frozen CLIP with its last-block rule, or SC-CLIP's) -> L2-normalised patch features ->
cosine logits against the text queries -> bilinear upsampling to the window; logits averaged by per-pixel window
count (LPOSS's `label-propagation` couples the windows through one graph instead). Then upsampled bilinearly to the original size, optionally refined by PAMR (on the normalised
image at the original size, as NACLIP), then softmax(tau * logits), max over synonyms, the background rules
where the benchmark has a background class. `predict` returns (K, H0, W0) scores whose argmax is the decision.

Under `templates: floss:<rankings>.json` a window's maps are FLOSS's fused probabilities instead of its logits
(naclip.py fusion mode, components/template_axis.py): every query's expert classifier and the default one (the 80
templates) each give softmax(tau * cosine) at the patch grid, bilinear to the window, fused; the rest as above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.api import Fitted, Timer, TimingPrep, Vocabulary, no_timer
from harness.errors import ConfigError

from ..components.dino import DinoFeatures, build_dino
from ..components.protocol_resize import resize_image
from ..components.queries import QuerySet, class_probabilities, decide
from ..components.template_axis import FlossTemplates, expert_classifiers, fuse_experts, parse_templates
from ..components.text import IMAGENET_TEMPLATES, TextEncoder
from ..components.weights import build_clip
from ..components.window_coupling import ImageWindows
from ..training_free_spec import TrainingFreeSpec


def protocol_size(height: int, width: int, short_side: int, max_long_side: int) -> tuple[int, int]:
    """mmseg `Resize(scale=(max_long_side, short_side), keep_ratio=True)`: the largest scale that keeps the short
    side <= short_side and the long side <= max_long_side, sides rounded half up."""
    scale = min(max_long_side / max(height, width), short_side / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


class DenseSegmenter(nn.Module):
    """Frozen CLIP (+ DINO for `proxy`) and text queries; nothing trains (a `harness.api.Segmenter`).

    Timed stages: preprocess, text, dino (ProxyCLIP), clip (the CLIP windows), postprocess (upsampling, PAMR and
    the decision). `counts["windows"]`: CLIP windows per image of the last call (as SimBaseline's N' crops)."""

    def __init__(self, spec: TrainingFreeSpec, clip_model: nn.Module, text: TextEncoder,
                 dino: nn.Module | None = None, name: str = "") -> None:
        super().__init__()
        self.spec = spec
        self.clip = spec.image_model_part().window_model(clip_model, spec)  # the image side (a part)
        self.text = text
        self.dino = DinoFeatures(dino) if dino is not None and spec.needs_dino else None
        if spec.needs_dino and dino is None:
            raise ValueError("attention 'proxy' needs a DINO model")
        self.coupling = spec.coupling_part()  # how the windows of an image are combined (a part)
        if self.coupling.uses_dino() and dino is None:
            raise ValueError(f"coupling {self.coupling.name!r} needs a DINO model")
        self.graph = self.coupling.graph_model(self.clip, dino)
        self._floss_cache: dict[str, Any] = {}
        self.floss = (FlossTemplates.from_option(spec.templates, spec.floss_top_n, name)
                      if parse_templates(spec.templates)[0] == "floss" else None)
        self.counts: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return self.clip.pixel_mean.device

    def trainable_parameters(self) -> list[str]:
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def prepare_for_timing(self, prep: TimingPrep) -> dict[str, Any]:
        """`compile` compiles the CLIP trunk (and DINO); there are no convolutions worth channels-last beyond the
        patch embedding, so that request is declined (and recorded as such)."""
        done: dict[str, Any] = {"channels_last": [], "compiled": [], "precision": prep.precision}
        if prep.compile:
            self.clip = torch.compile(self.clip)
            done["compiled"].append("clip")
            if self.dino is not None:
                self.dino = torch.compile(self.dino)
                done["compiled"].append("dino")
        return done

    def queries(self, vocab: Vocabulary, names: str | None = None) -> QuerySet:
        """The text queries: the name file of `names` (default: the spec's) for the vocabulary's dataset, each
        synonym and background word its own query mapped to its class (`harness.data.name_files`); or the
        vocabulary's class names, one query each, under "plain", for a free class list (the demo's --classes)
        and on datasets no repository has a file for. The vocabulary's background class, if it has one."""
        spec = self.spec if names is None else dataclasses.replace(self.spec, names=names)
        loaded = spec.class_names(vocab.dataset)
        if loaded is None:
            return QuerySet.plain(vocab.names, background=vocab.background)
        if loaded.num_classes != len(vocab.names):
            raise ConfigError(f"the {spec.names} name file of {vocab.dataset} has {loaded.num_classes} classes, the "
                              f"benchmark asks for {len(vocab.names)}.")
        return QuerySet(loaded.queries, loaded.query_class, loaded.num_classes, background=vocab.background)

    def window_logits(self, crops: Tensor, text: Tensor, timer: Timer) -> Tensor:
        """Normalised windows (B, 3, h, w) -> cosine logits (B, Q, h, w) at the window's size."""
        feats = self._window_features(crops, timer)
        with timer("clip"):
            logits = torch.einsum("bdhw,qd->bqhw", feats, text.to(feats.dtype))
            return F.interpolate(logits.float(), size=crops.shape[-2:], mode="bilinear", align_corners=False)

    def floss_window_probs(self, crops: Tensor, experts: Tensor, text: Tensor, tau: float, timer: Timer) -> Tensor:
        """FLOSS: windows (B, 3, h, w), expert classifiers (Q, Q, D), default (Q, D) -> fused probabilities
        (B, Q, h, w) (module docstring)."""
        feats = self._window_features(crops, timer)
        with timer("clip"):
            def probs(classifier: Tensor) -> Tensor:
                logits = torch.einsum("bdhw,qd->bqhw", feats, classifier.to(feats.dtype)).float()
                return F.interpolate(torch.softmax(tau * logits, dim=1), size=crops.shape[-2:], mode="bilinear",
                                     align_corners=False)

            return fuse_experts(lambda e: probs(experts[e]), experts.shape[0], probs(text))

    def _window_features(self, crops: Tensor, timer: Timer) -> Tensor:
        proxy = None
        if self.dino is not None:
            with timer("dino"):
                proxy = self.dino(crops)
        with timer("clip"):
            return self.clip(crops, proxy)

    def template_classifiers(self, queries: Sequence[str]) -> Tensor:
        """(80, Q, D): every query under each ImageNet template alone, normalised (FLOSS's template ids)."""
        return torch.stack([TextEncoder(self.text, templates=(t,))(list(queries)).float()
                            for t in IMAGENET_TEMPLATES])

    def query_logits(self, image: Tensor, vocab: Vocabulary, text: Tensor) -> Tensor:
        """image (3, H0, W0) uint8 and classifiers (C, D) -> the dense path's cosine logits (C, H0, W0) (windows,
        upsampling and PAMR, all channel by channel), untimed: FLOSS's ranking pass (methods/tools)."""
        return self._logits(image, self.spec.for_dataset(vocab.dataset), text, no_timer)[0]

    @torch.no_grad()
    def predict(self, image: Tensor, vocab: Vocabulary, *, max_size: int = 2560) -> Tensor:
        """image (3, H0, W0) uint8 -> scores (K, H0, W0) (argmax = the decision)."""
        return self.predict_batch([image], vocab, max_size=max_size)[0]

    @torch.no_grad()
    def prepare_vocabulary(self, vocab: Vocabulary) -> bool:
        """The queries' text embeddings (and FLOSS's expert classifiers), as `predict_batch` asks for them (kept by
        the text encoder's cache and the experts')."""
        self._vocabulary_embeddings(self.queries(vocab, self.spec.for_dataset(vocab.dataset).names), vocab)
        return True

    def _vocabulary_embeddings(self, queries: QuerySet, vocab: Vocabulary) -> tuple[Tensor, Tensor | None]:
        """The queries' text embeddings (Q, D) and, under FLOSS, the expert classifiers (Q, Q, D); both cached."""
        text = self.text(list(queries.queries)).float()
        return text, self._floss_experts(queries, vocab) if self.floss is not None else None

    @torch.no_grad()
    def predict_batch(self, images: Sequence[Tensor], vocab: Vocabulary, *, max_size: int = 2560,
                      timer: Timer = no_timer) -> list[Tensor]:
        """Each image on its own (windows are batched within an image). `max_size`, the dataset's test cap, is
        not used: the protocol caps the long side at the spec's `max_long_side`; the seen flags neither (no
        seen/unseen calibration in this family)."""
        del max_size
        spec = self.spec.for_dataset(vocab.dataset)
        queries = self.queries(vocab, spec.names)
        decision = spec.decision()
        decision.check(queries, vocab.dataset or "this class list")
        with timer("text"):
            text, experts = self._vocabulary_embeddings(queries, vocab)
            window_maps = None
            if experts is not None:
                window_maps = lambda crops: self.floss_window_probs(crops, experts, text, spec.tau, timer)  # noqa: E731
        self.counts = {"windows": []}
        out = []
        for image in images:
            logits, n_windows = self._logits(image, spec, text, timer, window_maps)
            self.counts["windows"].append(n_windows)
            with timer("postprocess"):
                probs = class_probabilities(logits, queries, spec.tau)
                _check_finite(probs, len(out), spec)
                out.append(decide(probs, queries, decision))
        return out

    def _floss_experts(self, queries: QuerySet, vocab: Vocabulary) -> Tensor:
        """(Q, Q, D) expert classifiers of the vocabulary, kept per query list (the text stage's cache)."""
        key = (queries.queries, tuple(vocab.names), vocab.dataset)
        if self._floss_cache.get("key") != key:
            experts = self.floss.query_experts(vocab.dataset, vocab.names, queries.query_class)
            per_template = self.template_classifiers(queries.queries)
            self._floss_cache = {"key": key, "experts": expert_classifiers(per_template, experts).to(self.device)}
        return self._floss_cache["experts"]

    def _logits(self, image: Tensor, spec: TrainingFreeSpec, text: Tensor, timer: Timer,
                window_maps: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, int]:
        h0, w0 = image.shape[-2:]
        with timer("preprocess"):
            size = protocol_size(h0, w0, spec.short_side, spec.max_long_side)
            if size != (h0, w0):
                raw = resize_image(image, size, spec.resize).to(self.device)  # cv2 (mmseg) or torch
            else:
                raw = image.to(self.device).float()[None]
            x = self.clip.normalise(raw)[0]
        windows = ImageWindows(x, raw, text, spec.slide_config(self.clip.patch_size[0]),
                               window_maps or (lambda crops: self.window_logits(crops, text, timer)), self.clip,
                               self.graph)
        logits, n_windows = self.coupling.combine(windows, timer)  # every window of the image at once
        with timer("postprocess"):
            logits = F.interpolate(logits[None], size=(h0, w0), mode="bilinear", align_corners=False)
            refinement = spec.refinement()  # PAMR (a part of kind refinement), None when off
            if refinement is not None:
                guide = F.interpolate(x[None], size=(h0, w0), mode="bilinear", align_corners=False)
                logits = refinement.refine(guide, logits)
        return logits[0], n_windows


def build_training_free(name: str, spec: TrainingFreeSpec, env, random_fallback: bool = False) -> Fitted:
    """The frozen models, ready to predict (no stages: nothing trains). With `random_fallback` (timing only),
    missing CLIP or DINO weights become random ones, said so in the record's weights."""
    from harness.errors import WeightsError

    from ..stages.common import resolve_device

    device = resolve_device(env.device)
    try:
        clip_model, clip_info = build_clip(spec.clip_arch, spec.clip_weights, "cpu", seed=env.seed)
        clip_record: dict[str, Any] = clip_info.as_record()
    except WeightsError as exc:
        if not random_fallback:
            raise
        clip_model, clip_info = build_clip(spec.clip_arch, "random", "cpu", seed=env.seed)
        clip_record = {**clip_info.as_record(), "fallback": f"asked for {spec.clip_weights!r}: {exc}"}
    weights: dict[str, Any] = {"clip": clip_record, "stages": {}}  # training-free: no stage
    dino = None
    if spec.needs_dino or spec.coupling_part().uses_dino():
        try:
            dino, dino_info = build_dino(spec.dino_arch, spec.dino_weights, seed=env.seed)
            weights["dino"] = dino_info.as_record()
        except WeightsError as exc:
            if not random_fallback:
                raise
            dino, dino_info = build_dino(spec.dino_arch, "random", seed=env.seed)
            weights["dino"] = {**dino_info.as_record(), "fallback": f"asked for {spec.dino_weights!r}: {exc}"}
    # FLOSS's default classifier is the 80 ImageNet templates; its experts are built per vocabulary
    text = TextEncoder(clip_model, mode="templates", templates=parse_templates(spec.templates)[1] or IMAGENET_TEMPLATES)
    segmenter = DenseSegmenter(spec, clip_model, text, dino, name).to(device).eval()
    return Fitted(name=name, segmenter=segmenter, weights=weights, stages={}, spec=spec)


def _check_finite(probs: Tensor, index: int, spec: TrainingFreeSpec) -> None:
    """Argmax of NaN is class 0 everywhere: never an `ok` record. An asynchronous assert, so that a GPU does not
    wait for the check (no host synchronisation in a timed call, issue 24): on a CPU it raises at once, on a GPU
    at the next synchronisation (a device-side assert, which ends the run's use of that GPU)."""
    message = (f"the class scores of image {index} are not finite (NaN or inf), so every pixel would be labelled "
               f"class 0. An option sends the logits out of range (tau {spec.tau:g}; an attention rule's "
               f"sigma/beta/gamma) or the weights are damaged.")
    try:
        torch._assert_async(torch.isfinite(probs).all(), message)
    except RuntimeError:
        raise FloatingPointError(message) from None

