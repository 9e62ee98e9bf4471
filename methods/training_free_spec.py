"""The training-free CLIP family as data: a `TrainingFreeSpec` over the dense pipeline (TRAINING_FREE_SPEC; the
DeOP family's `spec.MethodSpec` is the model; `methods.training_free.TrainingFreePlugin` resolves options into one).

A plugin's defaults are its public repository's settings, with the repository and commit they come from
(`source`); `per_dataset` holds the settings a repository changes per benchmark (e.g. SCLIP's tau 65 on VOC-21),
applied when the benchmark's dataset has that name. Nothing trains: `fit` and `build_untrained` build the same
segmenter (frozen CLIP, text embeddings, DINO for `proxy`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.data.name_files import FAMILIES, UPSTREAM_FILE, ClassNames, load_name_file, load_names
from harness.errors import ConfigError, DataError
from harness.parts import option

from .components.attention_rules import RULE_ALIASES, rule_names
from .components.image_models import IMAGE_MODELS, ImageModel, describe_background
from .components.last_block import KEEP_DROP, make_rule
from .components.protocol_resize import POS_INTERPS, RESIZES
from .components.queries import Decision
from .components.refinements import PAMRRefinement
from .components.sliding import SlideConfig
from .components.template_axis import FlossTemplates, parse_templates
from .components.training_free_rules import KKGauss, Proxy
from .components.window_coupling import COUPLINGS, WindowCoupling
from .spec_base import SpecBase, part_option

if TYPE_CHECKING:
    from harness.api import Fitted, MethodEnv

NAME_FAMILIES = FAMILIES  # sclip, clearclip, proxyclip, plain (harness.data.name_files)


def _check_dataset_name(dataset: Any) -> None:
    """A per_dataset key must name a catalogued dataset: a misspelt one would be silently never applied."""
    from harness.errors import RegistryError
    from harness.registries import DATASETS

    if isinstance(dataset, str) and dataset in DATASETS:
        return
    try:
        DATASETS.entry(str(dataset))
    except RegistryError as exc:
        raise ConfigError(f"option per_dataset.{dataset}: {exc}") from None


def _attention_choices() -> tuple[str, ...]:
    # the last block has no proposal masks: every registered rule but those that need them, by either name
    return (*rule_names(needs_masks=False), *RULE_ALIASES)


@dataclass(frozen=True)
class TrainingFreeSpec(SpecBase):
    """Everything that defines a training-free method (TRAINING_FREE_SPEC 1-2)."""

    builder: ClassVar[str] = "methods.pipelines.dense:build_training_free"
    part_options: ClassVar[dict[str, str]] = {"attention": "attention", "image_model": "image-model",
                                              "coupling": "coupling"}
    option_aliases: ClassVar[dict[str, str]] = {"ps": "attention"}  # the DeOP family's name of `attention`

    kind: str = option("training-free", "the pipeline", choices=("training-free",))
    source: str = ""  # the repository @ commit its defaults come from
    # CLIP: OpenAI ViT-B/16 (QuickGELU), frozen; "random" only when asked.
    clip_arch: str = "ViT-B-16-quickgelu"
    clip_weights: str = "openai"
    # The last block: attention rule (and its parameters, declared by the rules), residual and FFN kept or dropped.
    attention: str = option("qk", "the last block's attention rule (harness list parts)", choices=_attention_choices)
    sigma: float = part_option(KKGauss, "sigma")
    beta: float = part_option(Proxy, "beta")
    gamma: float = part_option(Proxy, "gamma")
    residual: str = option("keep", "the last block's residual", choices=KEEP_DROP)
    ffn: str = option("keep", "the last block's FFN", choices=KEEP_DROP)
    # Image: short side (long side capped), sliding windows (or the whole image), padding of each window.
    # the upper bounds stop a typo from asking for terabytes or days
    short_side: int = option(336, "short side of the resized image", low=1, high=8192)
    max_long_side: int = option(2048, "cap of the long side", low=1, high=8192)
    mode: str = "slide"
    crop: int = 224
    stride: int = 112
    pad_to: int = 0  # pad each window symmetrically to a multiple of this (0: no padding; ProxyCLIP: 56)
    pad_to_patch: bool = False  # ClearCLIP: pad each window to a multiple of the CLIP patch size
    window_batch: int = 0  # windows per CLIP call, 0 = all windows of one size at once
    remainder: str = option("crop", "a window side that is not a multiple of the patch: cut (the repos) or pad",
                            choices=("crop", "pad"))
    # The two resizings as the family's repositories do them (components/protocol_resize.py): CLIP's positional
    # grid bicubic with scale_factor (g + 0.1) / n0 ("size": to the target grid, as DeOP), and the image with
    # cv2 on uint8 as mmseg ("torch": bilinear on floats).
    pos_interp: str = option("scale-factor", "positional grid resizing: (g + 0.1) / n0 scale factor (SCLIP family) "
                             "or to the target size (DeOP)", choices=POS_INTERPS)
    resize: str = option("cv2", "image resizing: cv2 on uint8 (mmseg) or torch bilinear on floats",
                         choices=RESIZES)
    # Text and decision. `names`: whose class-name file gives the queries (harness.data.name_files: "sclip",
    # "clearclip", "proxyclip" files with synonyms and background words, or "plain" catalog names), or the path
    # of one's own file (".txt", one class per line, synonyms separated by ", ").
    names: str = "plain"
    templates: str = option("imagenet", "prompt templates: imagenet, single, vild, a .txt file of templates or "
                            "floss:<rankings>.json (FLOSS's per-class experts; components/template_axis.py)")
    floss_top_n: int = option(4, "expert templates per class under templates: floss:... (FLOSS's top_n)",
                              low=1, high=80, omit_default=True)
    tau: float = part_option(Decision, "tau")
    prob_thd: float = part_option(Decision, "prob_thd")
    area_thd: float = part_option(Decision, "area_thd")
    # The image side and how an image's windows are combined: parts whose options are their own fields
    # (components/image_models.py, components/window_coupling.py); left out of the record at their defaults.
    image_model: str = option("last-block", "the image side (a part of kind image-model)",
                              choices=lambda: tuple(IMAGE_MODELS), omit_default=True)
    coupling: str = option("independent", "how the windows of an image are combined (a part of kind coupling)",
                           choices=lambda: tuple(COUPLINGS), omit_default=True)
    pamr: bool = False
    pamr_steps: int = part_option(PAMRRefinement, "steps")
    pamr_dilations: tuple[int, ...] = part_option(PAMRRefinement, "dilations")
    # The proxy's foundation model (attention: proxy only).
    dino_arch: str = "vit_base_patch8_224"
    dino_weights: str = "dino"
    per_dataset: Mapping[str, Mapping[str, Any]] = option({}, "option overrides per dataset name")

    def __post_init__(self) -> None:
        super().__post_init__()  # types, ranges and choices of every field (harness.parts)
        if parse_templates(self.templates)[0] == "floss":  # ConfigError naming `templates` for a bad value
            self._check_floss()
        if self.names not in FAMILIES and not self.names.endswith(".txt"):
            raise ConfigError(f"option names={self.names!r}: unknown names family; choose one of "
                              f"{', '.join(FAMILIES)}, or give the path of a name file ending in .txt.")
        if self.pad_to_patch and self.pad_to:
            raise ConfigError("options pad_to and pad_to_patch exclude each other: pad to a fixed multiple or to the "
                              "patch size.")
        if not self.pamr_dilations:
            raise ConfigError(f"option pamr_dilations must list integers >= 1, got {list(self.pamr_dilations)}.")
        self.rule()  # the rule's own options (sigma / beta / gamma ranges, an out-of-tree rule's)
        self.image_model_part(), self.coupling_part()  # their options, checked by the parts
        self.slide_config()  # mode, crop, stride, pad_to, window_batch
        self.decision()  # tau, prob_thd, area_thd
        if self.needs_dino and self.residual == "keep":
            raise ConfigError("attention: proxy returns tokens on the foundation model's grid; it needs "
                              "residual: drop (ProxyCLIP drops the residual and the FFN).")
        for dataset, overrides in self.per_dataset.items():
            _check_dataset_name(dataset)
            bad = sorted(set(overrides) - PER_DATASET_OPTIONS) if isinstance(overrides, Mapping) else overrides
            if bad:
                raise ConfigError(f"option per_dataset.{dataset}: only {', '.join(sorted(PER_DATASET_OPTIONS))} "
                                  f"may change per dataset, got {bad}.")

    def _check_floss(self) -> None:
        """FLOSS fuses per-window probabilities of the dense pipeline's own windows (naclip.py, fusion mode): a
        pipeline of its own (Talk2DINO) or coupled windows (LPOSS's seeds are logits, not probabilities) has no
        such place."""
        from .components.image_models import DENSE_BUILDER

        if self.image_model_part().builder != DENSE_BUILDER:
            raise ConfigError(f"option templates={self.templates!r}: FLOSS's fusion runs in the dense pipeline; "
                              f"image model {self.image_model!r} builds its own.")
        if self.coupling != "independent":
            raise ConfigError(f"option templates={self.templates!r}: FLOSS fuses each window's probabilities; "
                              f"coupling {self.coupling!r} couples the windows' logits (use coupling: independent).")

    @property
    def trains(self) -> bool:
        """A training-free method has no training stage (the contract test says so)."""
        return False

    @property
    def needs_dino(self) -> bool:
        return "proxy" in self.rule().context

    def rule(self):
        """The last block's rule, its options from this spec (sigma, beta, gamma, or an out-of-tree rule's)."""
        return make_rule(self.attention, sigma=self.sigma, beta=self.beta, gamma=self.gamma, **self.extra_options)

    def image_model_part(self) -> ImageModel:
        """The selected image model, its options from ``extra_options`` (components/image_models.py)."""
        return self.build_part("image_model")

    def coupling_part(self) -> WindowCoupling:
        """The selected window coupling, its options from ``extra_options`` (components/window_coupling.py)."""
        return self.build_part("coupling")

    def refinement(self) -> PAMRRefinement | None:
        """The refinement of the logits (PAMR with this spec's steps and dilations), None when off."""
        if not self.pamr or self.pamr_steps == 0:
            return None
        return PAMRRefinement(steps=self.pamr_steps, dilations=self.pamr_dilations)

    def slide_config(self, patch: int = 0) -> SlideConfig:
        """The windows; `patch` (the CLIP patch size) is the padding multiple where `pad_to_patch` asks for it."""
        pad_to = patch if self.pad_to_patch else self.pad_to
        return SlideConfig(mode=self.mode, crop=self.crop, stride=self.stride, pad_to=pad_to,
                           max_batch=self.window_batch)

    def decision(self) -> Decision:
        return Decision(tau=self.tau, prob_thd=self.prob_thd, area_thd=self.area_thd)

    def for_dataset(self, dataset: str | None) -> TrainingFreeSpec:
        """This spec with the dataset's overrides applied (itself when it has none)."""
        overrides = dict(self.per_dataset.get(dataset, {})) if dataset else {}
        if not overrides:
            return self
        return dataclasses.replace(self, **overrides)  # coerced and checked again, as every spec

    def class_names(self, dataset: str | None) -> ClassNames | None:
        """The name file of `names` for `dataset`; None (the vocabulary's own names, one query each) under
        `names: plain`, or on a dataset no repository publishes a file for (synthetic data, MiniWorld: there the
        catalog names are all there is; `benchmark_settings` records it)."""
        try:
            if dataset is not None and self.names.endswith(".txt"):
                return load_name_file(self.names, dataset)
            if dataset is None or self.names == "plain" or dataset not in UPSTREAM_FILE:
                return None
            return load_names(dataset, self.names)
        except DataError as exc:
            raise ConfigError(f"option names={self.names!r}: {exc}") from None

    def benchmark_settings(self, dataset: str, method: str = "") -> dict[str, Any]:
        """Check this spec against a benchmark's dataset and say what it runs with there (for the record; under
        `templates: floss:...` the rankings file of `method` on it, with its sha256 once it exists).

        Each a `ConfigError` naming the option, before anything runs: a background threshold on a dataset
        without background (SCLIP issue #2), a name file that does not fit the dataset, a sliding window larger
        than the (resized) image without padding (the window would silently become the whole image side)."""
        from harness.registries import DATASETS

        info = DATASETS.get(dataset)
        spec = self.for_dataset(dataset)
        for name in ("prob_thd", "area_thd"):
            if getattr(spec, name) > 0 and not info.has_background:
                raise ConfigError(
                    f"option {name}={getattr(spec, name)} needs a background class, and dataset {dataset!r} has "
                    f"none: pixels below the threshold would become class 0 ({info.class_names[0]!r}), a real "
                    f"class here (SCLIP issue #2: near-zero mIoU). Set it only for datasets with background, "
                    f"e.g. per_dataset: {{voc_21: {{{name}: ...}}}}.")
        padded = spec.pad_to > 0 or spec.pad_to_patch
        if spec.mode == "slide" and not padded and spec.crop > spec.short_side:
            raise ConfigError(
                f"option crop={spec.crop} is larger than the image on {dataset!r} (resized to short side "
                f"short_side={spec.short_side}) and pad_to is 0: the window would silently shrink to the image. "
                f"Use crop <= short_side, mode: whole, or pad_to > 0.")
        names = spec.class_names(dataset)
        if names is not None:
            described = names.describe()
        elif spec.names == "plain":
            described = "plain (the catalog's class names)"
        else:
            described = f"plain (the catalog's class names: no repository publishes a name file for {dataset!r})"
        changed = {k: getattr(spec, k) for k in self.per_dataset.get(dataset, {})}
        return {"dataset": dataset, "names": spec.names if names is not None else "plain", "name_file": described,
                "queries": len(names.queries) if names is not None else info.num_classes,
                "background": info.has_background, "per_dataset": changed,
                **({"background_decision": describe_background(spec.image_model_part(), spec)}
                   if info.has_background else {}),
                **({"floss_rankings": _rankings_record(spec, method, dataset)}
                   if parse_templates(spec.templates)[0] == "floss" else {})}

    def as_dict(self) -> dict[str, Any]:
        out = {**super().as_dict(), "pamr_dilations": list(self.pamr_dilations)}
        # the options of a selected image model or coupling, resolved (defaults included), so the record says
        # what ran; read back by `resolve` as options of the selected parts
        parts = {**self.image_model_part().options(), **self.coupling_part().options()}
        if parts:
            out["extra_options"] = {**parts, **out.get("extra_options", {})}
        return out

    def dataset_preflight(self, dataset: str, method: str) -> list[str]:
        """Under `templates: floss:...`, the rankings file of `method` on `dataset`, which the cell reads."""
        if parse_templates(self.templates)[0] != "floss":
            return []
        spec = self.for_dataset(dataset)
        path = FlossTemplates.from_option(spec.templates, spec.floss_top_n, method).rankings_file(dataset)
        if Path(path).is_file():  # (its sha256 goes into the record when the cell runs: not hashed here)
            return []
        return [f"FLOSS template rankings {path} of {method} on {dataset} (templates: {self.templates}); "
                f"rank them first on the train split: python -m harness templates rank SUITE --only "
                f"BENCHMARK/SETTING/{method} --out {path}"]

    def preflight(self) -> list[str]:
        from .components.dino import dino_weights_problem
        from .components.weights import weights_problem

        problems = [weights_problem(self.clip_arch, self.clip_weights)]
        if self.needs_dino:
            problems.append(dino_weights_problem(self.dino_arch, self.dino_weights))
        if self.coupling_part().uses_dino() and not self.needs_dino:
            problems.append(dino_weights_problem(self.dino_arch, self.dino_weights))
        problems += self.image_model_part().weights_problems(self)
        return [p for p in problems if p]

    def build(self, name: str, env: MethodEnv, *, train: bool) -> Fitted:
        """Nothing trains: the frozen models; untrained (timing), missing CLIP weights fall back to random ones."""
        module, _, attr = self.image_model_part().builder.partition(":")  # the image model says its pipeline
        return getattr(importlib.import_module(module), attr)(name, self, env, random_fallback=not train)


def _rankings_record(spec: TrainingFreeSpec, method: str, dataset: str) -> dict[str, Any]:
    """The FLOSS rankings file a cell reads, with its sha256 (None while it is not written yet: a suite is checked
    before its rankings are computed)."""
    from pathlib import Path

    from .components.template_axis import FlossTemplates
    from .components.weights import sha256_of

    path = FlossTemplates.from_option(spec.templates, spec.floss_top_n, method).rankings_file(dataset)
    return {"file": path, "sha256": sha256_of(Path(path)) if Path(path).is_file() else None,
            "top_n": spec.floss_top_n}


# The SCLIP protocol (wangf3014/SCLIP @b56bd30 configs, mmseg 1.1.1): short side 336, windows 224/112, tau 40; a
# background threshold of 0.1 on the benchmarks with a background class. Plugins that follow it share these.
# The SCLIP family's name files (configs/cls_*.txt, the same in NACLIP) go with it.
SCLIP_PROTOCOL = {"short_side": 336, "mode": "slide", "crop": 224, "stride": 112, "tau": 40.0, "names": "sclip"}
BACKGROUND_THD_01 = {"voc_21": {"prob_thd": 0.1}, "pc_60": {"prob_thd": 0.1}, "coco_object": {"prob_thd": 0.1}}
PER_DATASET_OPTIONS = frozenset({"short_side", "mode", "crop", "stride", "pad_to", "tau", "prob_thd", "area_thd"})
