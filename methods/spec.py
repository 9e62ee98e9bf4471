"""A method is data: a `MethodSpec` over the shared components (a `methods.plugin.Plugin` resolves options into one).

Variants are specs, not subclasses (timm-style): `baseline`, `baseline+`, `baseline+ps`, `baseline+cal`, `deop`
and `simbaseline` are the same two pipelines (one-pass, multi-pass) with different fields. A suite row's options
override the plugin's defaults; unknown options and bad values are `ConfigError`s naming the choices. The `ps`
choices are the registered attention rules (`methods.components.attention_rules.ATTENTION_RULES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import ConfigError
from harness.parts import option

from .components.attention_rules import RULE_ALIASES, rule_names
from .components.cal_heads import CAL_HEADS, ConvCAL, LayeredCAL, QueryCAL
from .components.pooling import POOLINGS
from .components.proposal_sources import PROPOSAL_SOURCES, MaskFormerProposals
from .spec_base import SpecBase, part_option

# Choices of the string options; `ps` is checked against the attention-rule table, which plugins may extend.
# A new `kind` also needs its segmenter class in `methods.pipelines.assemble.PIPELINES`.
CHOICES: dict[str, tuple[Any, ...]] = {
    "kind": ("one-pass", "multi-pass"),
    "text_prompt": ("offline", "learnable", "templates"),
    "templates": ("single", "vild", "imagenet"),
    "visual_prompt": ("none", "add"),
    "input_normalisation": ("imagenet", "clip"),
    "background_fill": ("normalised-mean", "mean-colour"),
}


def _ps_choices() -> tuple[str, ...]:
    # rules that need a patch grid or proxy features (NACLIP's, ProxyCLIP's) run only in the dense pipeline
    return (*rule_names(needs_context=False), *RULE_ALIASES)


def _choice(name: str, default: Any, doc: str = "") -> Any:
    return option(default, doc, choices=CHOICES[name])


@dataclass(frozen=True)
class MethodSpec(SpecBase):
    """Everything that defines a method. Field docs say which paper section / METHOD_SPEC item they follow."""

    builder: ClassVar[str] = "methods.pipelines.assemble:assemble"
    part_options: ClassVar[dict[str, str]] = {"ps": "attention", "pooling": "pooling", "cal": "cal",
                                              "proposal_source": "proposals"}
    option_aliases: ClassVar[dict[str, str]] = {"attention": "ps"}  # the training-free family's name of `ps`

    kind: str = _choice("kind", "one-pass", "the pipeline")
    # CLIP (METHOD_SPEC 4): OpenAI ViT-B/16 with QuickGELU; "random" weights only when asked for.
    clip_arch: str = "ViT-B-16-quickgelu"
    clip_weights: str = "openai"
    # Text side (METHOD_SPEC 2): "offline" = CoOp context learned in stage 1 and frozen (SimBaseline, baseline);
    # "learnable" = initialised from stage 1 and fine-tuned online with the head (END2ENDTRAIN, DeOP);
    # "templates" = fixed templates, no learned context.
    text_prompt: str = _choice("text_prompt", "offline")
    templates: str = _choice("templates", "single")
    n_ctx: int = option(16, "learned context tokens of the text prompt", low=1)
    # Visual prompts (METHOD_SPEC 4.3-4.4): additive tables at the input and before ln_1 of these blocks.
    visual_prompt: str = _choice("visual_prompt", "none")
    prompt_layers: tuple[int, ...] = option((1, 2, 3, 4, 5), "blocks that get a visual prompt", low=0)
    # Patch severance (paper 4.1, METHOD_SPEC 5): the name of a registered attention rule. "gps" = alpha*I +
    # (1-alpha)*Attn in the last len(alpha) blocks (alpha[0] for the last block, alpha[1] for the one before);
    # "coverage" = the released code's identity scaled by the mask coverage, last block; "mps" = mask-guided
    # severance, last block (`python -m harness list rules`).
    ps: str = option("none", "the attention rule (harness list parts)", choices=_ps_choices)
    alpha: tuple[float, ...] = option((1.0,), "GPS alpha per block, the last block first")
    # CAL (paper 4.2, METHOD_SPEC 6): query-based heatmap decoder with K inner layers, or conv-based.
    # Pooling without CAL: a registered pooling part (its own options pass through, e.g. an out-of-tree one's).
    pooling: str = option("mask", "how a proposal is pooled without CAL (harness list parts)",
                          choices=lambda: tuple(POOLINGS), omit_default=True)
    # The CAL head: a registered part of kind cal (components/cal_heads.py); its options are declared there.
    cal: str = option("none", "the CAL head (a part of kind cal): none, query or conv (harness list parts)",
                      choices=lambda: tuple(CAL_HEADS))
    cal_layers: int = part_option(LayeredCAL, "cal_layers")
    cal_dropout: float = part_option(QueryCAL, "cal_dropout")
    conv_variant: str = part_option(ConvCAL, "conv_variant")
    # Inference (METHOD_SPEC 4, 8, 3): test short side, input statistics (the official DeOP feeds CLIP the
    # ImageNet-normalised tensor), SimBaseline's mask threshold and ensemble lambda per dataset.
    test_short_side: int = option(512, "test-time short side (pixels)", low=16, high=8192)
    input_normalisation: str = _choice("input_normalisation", "imagenet")
    mask_threshold: float = option(0.5, "SimBaseline: mask binarisation threshold")
    ensemble_lambda: Mapping[str, float] = option({}, "SimBaseline: ensemble lambda per dataset")
    default_lambda: float = option(0.8, "SimBaseline: ensemble lambda elsewhere")
    # Stage-1 prompt learning quirk (METHOD_SPEC 2): background filled with CLIP's mean in normalised space.
    background_fill: str = _choice("background_fill", "normalised-mean")
    # SimBaseline's crops per CLIP call (1 = sequential); None: all in one call on a GPU, 8 per call on a CPU
    # (cache-sized batches, faster there; methods/pipelines/multipass.py).
    crop_chunk: int | None = option(None, "SimBaseline: crops per CLIP call", low=1)
    # DeOP loss (METHOD_SPEC 7): weights of the focal and dice terms, sigmoid calibration sigma.
    focal_weight: float = 2.0
    dice_weight: float = 0.8
    output_sigma: float = 3.0
    # Where the proposals come from: a registered part of kind proposals (components/proposal_sources.py); the
    # class-agnostic MaskFormer (METHOD_SPEC 1) with MaskFormerConfig overrides, e.g. {"backbone": "resnet10t"}.
    proposal_source: str = option("maskformer", "where the proposals come from (a part of kind proposals)",
                                  choices=lambda: tuple(PROPOSAL_SOURCES), omit_default=True)
    proposals: Mapping[str, Any] = part_option(MaskFormerProposals, "proposals")

    def __post_init__(self) -> None:
        super().__post_init__()  # types, ranges and choices of every field (harness.parts)
        if not self.alpha or any(not 0.0 <= a <= 1.0 for a in self.alpha):
            raise ConfigError(f"option alpha={list(self.alpha)} must list one to a few values in [0, 1] "
                              f"(alpha of the last block first).")
        for name in ("pooling", "cal", "proposal_source"):  # their options (an out-of-tree part's too), now
            self.build_part(name)
        if self.kind == "multi-pass" and (self.ps != "none" or self.cal != "none" or self.visual_prompt != "none"):
            raise ConfigError("a multi-pass (SimBaseline) method classifies crops with plain CLIP: ps, cal and "
                              "visual_prompt must be 'none'.")

    @property
    def trains_head(self) -> bool:
        """Whether stage 3 has anything to train (the baseline has not: frozen CLIP, mask pooling)."""
        return self.kind == "one-pass" and (
            self.text_prompt == "learnable" or self.visual_prompt != "none" or CAL_HEADS[self.cal].trains)

    def lam(self, dataset: str) -> float:
        return float(self.ensemble_lambda.get(dataset, self.default_lambda))

    def preflight(self) -> list[str]:
        from .components.weights import weights_problem

        problem = weights_problem(self.clip_arch, self.clip_weights)
        return [problem] if problem else []
