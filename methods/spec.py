"""A method is data: a `MethodSpec` over the shared components (a `methods.plugin.Plugin` resolves options into one).

Variants are specs, not subclasses (timm-style): `baseline`, `baseline+`, `baseline+ps`, `baseline+cal`, `deop`
and `simbaseline` are the same two pipelines (one-pass, multi-pass) with different fields. A suite row's options
override the plugin's defaults; unknown options and bad values are `ConfigError`s naming the choices. The `ps`
choices are the registered attention rules (`methods.components.attention_rules.ATTENTION_RULES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError

from .components.attention_rules import ATTENTION_RULES
from .stages.proposal_options import proposal_config

# Choices of the string options; `ps` is checked against the attention-rule table, which plugins may extend.
# A new `kind` also needs its segmenter class in `methods.pipelines.assemble.PIPELINES`.
CHOICES: dict[str, tuple[Any, ...]] = {
    "kind": ("one-pass", "multi-pass"),
    "text_prompt": ("offline", "learnable", "templates"),
    "templates": ("single", "vild", "imagenet"),
    "visual_prompt": ("none", "add"),
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
    # Patch severance (paper 4.1, METHOD_SPEC 5): the name of a registered attention rule. "gps" = alpha*I +
    # (1-alpha)*Attn in the last len(alpha) blocks (alpha[0] for the last block, alpha[1] for the one before);
    # "coverage" = the released code's identity scaled by the mask coverage, last block; "mps" = mask-guided
    # severance, last block (`python -m harness list rules`).
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
    # SimBaseline's crops per CLIP call (1 = sequential); None: all in one call on a GPU, 8 per call on a CPU
    # (cache-sized batches, faster there; methods/pipelines/multipass.py).
    crop_chunk: int | None = None
    # DeOP loss (METHOD_SPEC 7): weights of the focal and dice terms, sigmoid calibration sigma.
    focal_weight: float = 2.0
    dice_weight: float = 0.8
    output_sigma: float = 3.0
    # The proposal network (METHOD_SPEC 1): MaskFormerConfig overrides, e.g. {"backbone": "resnet10t"}.
    proposals: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # rules that need a patch grid or proxy features (NACLIP's, ProxyCLIP's) run only in the dense pipeline
        ps_choices = tuple(n for n, rule in ATTENTION_RULES.items() if not rule.context)
        for name, choices in {**CHOICES, "ps": ps_choices}.items():
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"option {name}={value!r} is not one of {', '.join(map(str, choices))}.")
        if not self.alpha or any(not 0.0 <= a <= 1.0 for a in self.alpha):
            raise ConfigError(f"option alpha={list(self.alpha)} must list one to a few values in [0, 1] "
                              f"(alpha of the last block first).")
        if isinstance(self.test_short_side, bool) or not 16 <= self.test_short_side <= 8192:
            raise ConfigError(f"option test_short_side={self.test_short_side} must be in [16, 8192] (pixels).")
        if self.cal_layers < 0:
            raise ConfigError(f"option cal_layers={self.cal_layers} must be >= 0.")
        if self.crop_chunk is not None and self.crop_chunk < 1:
            raise ConfigError(f"option crop_chunk={self.crop_chunk} must be >= 1 (crops per CLIP call), or null.")
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
