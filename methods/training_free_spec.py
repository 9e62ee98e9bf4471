"""The training-free CLIP family as data: a `TrainingFreeSpec` over the dense pipeline (TRAINING_FREE_SPEC; the
DeOP family's `spec.MethodSpec` is the model; `methods.training_free.TrainingFreePlugin` resolves options into one).

A plugin's defaults are its public repository's settings, with the repository and commit they come from
(`source`); `per_dataset` holds the settings a repository changes per benchmark (e.g. SCLIP's tau 65 on VOC-21),
applied when the benchmark's dataset has that name. Nothing trains: `fit` and `build_untrained` build the same
segmenter (frozen CLIP, text embeddings, DINO for `proxy`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.data.name_files import FAMILIES, UPSTREAM_FILE, ClassNames, load_name_file, load_names
from harness.errors import ConfigError, DataError

from .components.last_block import ATTENTIONS, KEEP_DROP, make_rule
from .components.protocol_resize import POS_INTERPS, RESIZES
from .components.queries import Decision
from .components.sliding import SlideConfig
from .components.template_axis import parse_templates

NAME_FAMILIES = FAMILIES  # sclip, clearclip, proxyclip, plain (harness.data.name_files)


@dataclass(frozen=True)
class TrainingFreeSpec:
    """Everything that defines a training-free method (TRAINING_FREE_SPEC 1-2)."""

    kind: str = "training-free"
    source: str = ""  # the repository @ commit its defaults come from
    # CLIP: OpenAI ViT-B/16 (QuickGELU), frozen; "random" only when asked.
    clip_arch: str = "ViT-B-16-quickgelu"
    clip_weights: str = "openai"
    # The last block: attention rule (and its parameters), residual and FFN kept or dropped.
    attention: str = "qk"
    sigma: float = 5.0  # kk+gauss: Gaussian sigma in patches
    beta: float = 1.2  # proxy
    gamma: float = 3.0  # proxy
    residual: str = "keep"
    ffn: str = "keep"
    # Image: short side (long side capped), sliding windows (or the whole image), padding of each window.
    short_side: int = 336
    max_long_side: int = 2048
    mode: str = "slide"
    crop: int = 224
    stride: int = 112
    pad_to: int = 0  # pad each window symmetrically to a multiple of this (0: no padding; ProxyCLIP: 56)
    pad_to_patch: bool = False  # ClearCLIP: pad each window to a multiple of the CLIP patch size
    window_batch: int = 0  # windows per CLIP call, 0 = all windows of one size at once
    remainder: str = "crop"  # a window side that is not a multiple of the patch: cut (the repos) or pad
    # The two resizings as the family's repositories do them (components/protocol_resize.py): CLIP's positional
    # grid bicubic with scale_factor (g + 0.1) / n0 ("size": to the target grid, as DeOP), and the image with
    # cv2 on uint8 as mmseg ("torch": bilinear on floats).
    pos_interp: str = "scale-factor"
    resize: str = "cv2"
    # Text and decision. `names`: whose class-name file gives the queries (harness.data.name_files: "sclip",
    # "clearclip", "proxyclip" files with synonyms and background words, or "plain" catalog names), or the path
    # of one's own file (".txt", one class per line, synonyms separated by ", ").
    names: str = "plain"
    templates: str = "imagenet"  # or "single", or a .txt file of templates (components/template_axis.py)
    tau: float = 40.0
    prob_thd: float = 0.0
    area_thd: float = 0.0
    pamr: bool = False
    pamr_steps: int = 10
    pamr_dilations: tuple[int, ...] = (8, 16)
    # The proxy's foundation model (attention: proxy only).
    dino_arch: str = "vit_base_patch8_224"
    dino_weights: str = "dino"
    per_dataset: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        choices = {"kind": ("training-free",), "attention": ATTENTIONS, "residual": KEEP_DROP,
                   "ffn": KEEP_DROP, "remainder": ("crop", "pad"),
                   "pos_interp": POS_INTERPS, "resize": RESIZES}
        for name, options in choices.items():
            if getattr(self, name) not in options:
                raise ConfigError(f"option {name}={getattr(self, name)!r} is not one of {', '.join(options)}.")
        if parse_templates(self.templates)[0] == "floss":  # ConfigError naming `templates` for a bad value
            raise ConfigError(f"option templates={self.templates!r}: FLOSS's expert fusion is a component "
                              f"(components/template_axis.py), not yet an option of this pipeline.")
        if not isinstance(self.names, str) or (self.names not in FAMILIES and not self.names.endswith(".txt")):
            raise ConfigError(f"option names={self.names!r}: unknown names family; choose one of "
                              f"{', '.join(FAMILIES)}, or give the path of a name file ending in .txt.")
        for name in ("short_side", "max_long_side", "pamr_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "pamr_steps" else 1):
                raise ConfigError(f"option {name} must be a positive integer, got {value!r}.")
        for name in ("pamr", "pad_to_patch"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"option {name} must be true or false, got {getattr(self, name)!r}.")
        if self.pad_to_patch and self.pad_to:
            raise ConfigError("options pad_to and pad_to_patch exclude each other: pad to a fixed multiple or to the "
                              "patch size.")
        if not self.pamr_dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                                          for d in self.pamr_dilations):
            raise ConfigError(f"option pamr_dilations must list integers >= 1, got {list(self.pamr_dilations)}.")
        self.rule()  # sigma / beta / gamma ranges
        self.slide_config()  # mode, crop, stride, pad_to, window_batch
        self.decision()  # tau, prob_thd, area_thd
        if self.attention == "proxy" and self.residual == "keep":
            raise ConfigError("attention: proxy returns tokens on the foundation model's grid; it needs "
                              "residual: drop (ProxyCLIP drops the residual and the FFN).")
        if not isinstance(self.per_dataset, Mapping):
            raise ConfigError(f"option per_dataset must map dataset names to option overrides, got "
                              f"{self.per_dataset!r}.")
        for dataset, overrides in self.per_dataset.items():
            bad = sorted(set(overrides) - PER_DATASET_OPTIONS) if isinstance(overrides, Mapping) else overrides
            if bad:
                raise ConfigError(f"option per_dataset.{dataset}: only {', '.join(sorted(PER_DATASET_OPTIONS))} "
                                  f"may change per dataset, got {bad}.")

    @property
    def trains(self) -> bool:
        """A training-free method has no training stage (the contract test says so)."""
        return False

    @property
    def needs_dino(self) -> bool:
        return self.attention == "proxy"

    def rule(self):
        params = {"kk+gauss": {"sigma": self.sigma}, "proxy": {"beta": self.beta, "gamma": self.gamma}}
        return make_rule(self.attention, **params.get(self.attention, {}))

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
        return dataclasses.replace(self, **{k: coerce_option(k, v, getattr(self, k)) for k, v in overrides.items()})

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

    def benchmark_settings(self, dataset: str) -> dict[str, Any]:
        """Check this spec against a benchmark's dataset and say what it runs with there (for the record).

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
        padded = spec.pad_to > 0 or getattr(spec, "pad_to_patch", False)
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
                "background": info.has_background, "per_dataset": changed}

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["per_dataset"] = {k: dict(v) for k, v in self.per_dataset.items()}
        out["pamr_dilations"] = list(self.pamr_dilations)
        return out


# The SCLIP protocol (wangf3014/SCLIP @b56bd30 configs, mmseg 1.1.1): short side 336, windows 224/112, tau 40; a
# background threshold of 0.1 on the benchmarks with a background class. Plugins that follow it share these.
# The SCLIP family's name files (configs/cls_*.txt, the same in NACLIP) go with it.
SCLIP_PROTOCOL = {"short_side": 336, "mode": "slide", "crop": 224, "stride": 112, "tau": 40.0, "names": "sclip"}
BACKGROUND_THD_01 = {"voc_21": {"prob_thd": 0.1}, "pc_60": {"prob_thd": 0.1}, "coco_object": {"prob_thd": 0.1}}
PER_DATASET_OPTIONS = frozenset({"short_side", "mode", "crop", "stride", "pad_to", "tau", "prob_thd", "area_thd"})


def coerce_option(name: str, value: Any, default: Any) -> Any:
    """A YAML value brought to the field's type (lists -> tuples, ints -> floats where a float is expected)."""
    if isinstance(default, tuple):
        return tuple(value) if isinstance(value, list | tuple) else (value,)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"option {name} must be a mapping, got {value!r}.")
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
    if not isinstance(value, type(default)) or (isinstance(value, bool) and not isinstance(default, bool)):
        raise ConfigError(f"option {name} must be {type(default).__name__}, got {value!r}.")
    return value
