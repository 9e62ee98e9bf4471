"""A method is data: a `MethodSpec` over the shared components, and a `Plugin` that resolves options into one.

Variants are specs, not subclasses (timm-style): `baseline`, `baseline+`, `baseline+ps`, `baseline+cal`, `deop`
and `simbaseline` are the same two pipelines (one-pass, multi-pass) with different fields. A suite row's options
override the plugin's defaults; unknown options and bad values are `ConfigError`s naming the choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from harness.errors import ConfigError

from .stages.proposal_options import proposal_config

CHOICES: dict[str, tuple[Any, ...]] = {
    "kind": ("one-pass", "multi-pass"),
    "text_prompt": ("offline", "learnable", "templates"),
    "templates": ("single", "vild", "imagenet"),
    "visual_prompt": ("none", "add"),
    "ps": ("none", "gps", "coverage", "mps"),
    "cal": ("none", "query", "conv"),
    "conv_variant": ("paper", "released"),
    "input_normalisation": ("imagenet", "clip"),
    "background_fill": ("normalised-mean", "mean-colour"),
}


@dataclass(frozen=True)
class MethodSpec:
    """Everything that defines a method. Field docs say which paper section / METHOD_SPEC item they follow."""

    kind: str = "one-pass"
    # CLIP (METHOD_SPEC 4): OpenAI ViT-B/16 with QuickGELU; "random" weights only when asked for.
    clip_arch: str = "ViT-B-16-quickgelu"
    clip_weights: str = "openai"
    # Text side (METHOD_SPEC 2): "offline" = CoOp context learned in stage 1 and frozen (SimBaseline, baseline);
    # "learnable" = initialised from stage 1 and fine-tuned online with the head (END2ENDTRAIN, DeOP);
    # "templates" = fixed templates, no learned context.
    text_prompt: str = "offline"
    templates: str = "single"
    n_ctx: int = 16
    # Visual prompts (METHOD_SPEC 4.3-4.4): additive tables at the input and before ln_1 of these blocks.
    visual_prompt: str = "none"
    prompt_layers: tuple[int, ...] = (1, 2, 3, 4, 5)
    # Patch severance (paper 4.1, METHOD_SPEC 5): "gps" = alpha*I + (1-alpha)*Attn in the last len(alpha) blocks
    # (alpha[0] for the last block, alpha[1] for the one before); "coverage" = the released code's identity
    # scaled by the mask coverage, last block; "mps" = mask-guided severance, last block.
    ps: str = "none"
    alpha: tuple[float, ...] = (1.0,)
    # CAL (paper 4.2, METHOD_SPEC 6): query-based heatmap decoder with K inner layers, or conv-based.
    cal: str = "none"
    cal_layers: int = 1
    cal_dropout: float = 0.1  # the official decoder dropout; 0 makes DDP and single-process training identical
    conv_variant: str = "paper"
    # Inference (METHOD_SPEC 4, 8, 3): test short side, input statistics (the official DeOP feeds CLIP the
    # ImageNet-normalised tensor), SimBaseline's mask threshold and ensemble lambda per dataset.
    test_short_side: int = 512
    input_normalisation: str = "imagenet"
    mask_threshold: float = 0.5
    ensemble_lambda: Mapping[str, float] = field(default_factory=dict)
    default_lambda: float = 0.8
    # Stage-1 prompt learning quirk (METHOD_SPEC 2): background filled with CLIP's mean in normalised space.
    background_fill: str = "normalised-mean"
    # SimBaseline's crops go through CLIP in one batched call; set a size to bound memory (or 1 = sequential).
    crop_chunk: int | None = None
    # DeOP loss (METHOD_SPEC 7): weights of the focal and dice terms, sigmoid calibration sigma.
    focal_weight: float = 2.0
    dice_weight: float = 0.8
    output_sigma: float = 3.0
    # The proposal network (METHOD_SPEC 1): MaskFormerConfig overrides, e.g. {"backbone": "resnet10t"}.
    proposals: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"option {name}={value!r} is not one of {', '.join(map(str, choices))}.")
        if not self.alpha or any(not 0.0 <= a <= 1.0 for a in self.alpha):
            raise ConfigError(f"option alpha={list(self.alpha)} must list one to a few values in [0, 1] "
                              f"(alpha of the last block first).")
        if self.cal_layers < 0:
            raise ConfigError(f"option cal_layers={self.cal_layers} must be >= 0.")
        proposal_config(self.proposals)  # nested keys too, before any stage trains
        if self.kind == "multi-pass" and (self.ps != "none" or self.cal != "none" or self.visual_prompt != "none"):
            raise ConfigError("a multi-pass (SimBaseline) method classifies crops with plain CLIP: ps, cal and "
                              "visual_prompt must be 'none'.")

    @property
    def trains_head(self) -> bool:
        """Whether stage 3 has anything to train (the baseline has not: frozen CLIP, mask pooling)."""
        return self.kind == "one-pass" and (
            self.text_prompt == "learnable" or self.visual_prompt != "none" or self.cal != "none")

    def lam(self, dataset: str) -> float:
        return float(self.ensemble_lambda.get(dataset, self.default_lambda))

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ensemble_lambda"] = dict(self.ensemble_lambda)
        out["proposals"] = dict(self.proposals)
        return out


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Bring a YAML value to the field's type (lists -> tuples, ints -> floats where a float is expected)."""
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            value = [value]
        inner = type(default[0]) if default else None
        return tuple(float(v) if inner is float and isinstance(v, int) else v for v in value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"option {name} must be a mapping, got {value!r}.")
        return dict(value)
    if default is not None and not isinstance(value, type(default)) and value is not None:
        raise ConfigError(f"option {name} must be {type(default).__name__}, got {value!r}.")
    return value


class Plugin:
    """A registered method: a name, a description and the defaults its options override."""

    def __init__(self, name: str, description: str, **defaults: Any) -> None:
        self.name = name
        self.description = description
        self.defaults = defaults
        self.resolve({})  # a plugin with bad defaults fails at import, not in a suite

    def spec(self, options: Mapping[str, Any]) -> MethodSpec:
        known = {f.name: f for f in fields(MethodSpec)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            import difflib

            hints = [f"{u!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(u, known, 1)) else repr(u)
                     for u in unknown]
            raise ConfigError(f"method {self.name!r}: unknown option(s) {', '.join(hints)}. "
                              f"Options: {', '.join(known)}.")
        values = {**self.defaults, **options}
        base = MethodSpec()
        coerced = {k: _coerce(k, v, getattr(base, k)) for k, v in values.items()}
        try:
            return MethodSpec(**coerced)
        except ConfigError as exc:
            raise ConfigError(f"method {self.name!r}: {exc}") from None

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return self.spec(options).as_dict()

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        """What this method would miss before it starts (weights that cannot be found), as messages."""
        from .components.weights import weights_problem

        spec = self.spec(options)
        problem = weights_problem(spec.clip_arch, spec.clip_weights)
        return [problem] if problem else []

    def build_untrained(self, options: Mapping[str, Any], env):
        """The inference graph with untrained stages, for timing (see `pipeline.build_untrained`)."""
        from .pipeline import build_untrained

        return build_untrained(self.name, self.spec(options), env)

    def fit(self, options: Mapping[str, Any], env):
        """Train every stage this method needs (cached) and return a ready `Segmenter`."""
        from .pipeline import build_segmenter

        return build_segmenter(self.name, self.spec(options), env)
