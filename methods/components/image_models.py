"""The image side of a training-free method (parts of kind ``image-model``, `harness.parts`; ``harness list
parts``): what turns normalised windows into patch features, which pipeline builds the segmenter around it, and
which background decision it carries. Selected by the training-free option ``image_model``; its options are the
part's fields (recorded in the spec's ``extra_options``).

- ``last-block`` (default): the frozen CLIP whose last block follows the spec's ``attention`` rule (MaskCLIP, SCLIP,
  ClearCLIP, NACLIP, ProxyCLIP; `last_block.TrainingFreeCLIP`).
- ``scclip``: SC-CLIP's forward (SuleBai/SC-CLIP @0417ba9; `components/scclip.py`): LOF repair, pre-aggregation,
  mixed last-block attention, post-aggregation, multi-level pass, residual CLS.
- ``talk2dino``: DINOv2 ViT-B/14 with registers, CLIP's text projected into DINOv2's space, background cleaning and
  the constant ``bg_thresh`` channel (lorebianchi98/Talk2DINO @4918c2d); its own pipeline
  (`pipelines/talk2dino.py`).

``background`` names each one's background lineage (README, "Background decisions"): ``prob_thd`` (the SCLIP
family's threshold on the softmax, with the name files' background queries), ``bg_thresh`` (a constant score
channel, TCL / Talk2DINO).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from torch import Tensor, nn

from harness.errors import ConfigError
from harness.parts import Part, option, part_table, register_part

from ..spec_base import part_option
from .queries import ConstantBackground
from .scclip import LOF_VARIANTS, SCCLIPEncoder, SCCLIPLayers, default_layers
from .talk2dino import DINOV2_ARCH, DINOV2_TAG, projection_problem


class WindowSpec(Protocol):
    """What an image model reads of the method's spec (methods.training_free_spec.TrainingFreeSpec meets it); declared
    here so that the part does not import the spec that imports it."""

    residual: str
    ffn: str
    remainder: str
    pos_interp: str
    prob_thd: float

    def rule(self) -> Any:
        """The last block's attention rule (an AttnRule)."""

IMAGE_MODELS = part_table("image-model")  # the registered image models (harness list parts)
DENSE_BUILDER = "methods.pipelines.dense:build_training_free"


class ImageModel(Part):
    """Base of the ``image-model`` parts: ``builder`` ("module:function" of the pipeline that builds the segmenter,
    `build(name, spec, env, random_fallback)`), ``background`` (its background lineage), `window_model` (for the
    dense pipeline) and `weights_problems` (the preflight's missing files)."""

    kind: ClassVar[str] = "image-model"
    builder: ClassVar[str] = DENSE_BUILDER
    background: ClassVar[str] = "prob_thd"

    def window_model(self, clip_model: nn.Module, spec: WindowSpec) -> nn.Module:
        """Normalised windows (B, 3, h, w) -> L2-normalised patch features (B, D, gh, gw); has ``normalise``,
        ``patch_size`` and ``pixel_mean`` as `TrainingFreeCLIP`."""
        raise ConfigError(f"image model {self.name!r} is built by {self.builder}, not by the dense pipeline.")

    def weights_problems(self, spec: WindowSpec) -> list[str]:
        return []


def _last_block(clip_model: nn.Module, spec: WindowSpec) -> nn.Module:
    from .last_block import TrainingFreeCLIP

    return TrainingFreeCLIP(clip_model, spec.rule(), spec.residual, spec.ffn, spec.remainder, spec.pos_interp)


@register_part
@dataclass(frozen=True)
class LastBlockCLIP(ImageModel):
    name: ClassVar[str] = "last-block"
    description: ClassVar[str] = "frozen CLIP whose last block follows the spec's attention rule (MaskCLIP ... ProxyCLIP)"

    def window_model(self, clip_model: nn.Module, spec: WindowSpec) -> nn.Module:
        return _last_block(clip_model, spec)


@register_part
@dataclass(frozen=True)
class SCCLIPImageModel(ImageModel):
    """Blocks are 1-based (block b = the output of the b-th residual block); all four 0 = the published indices
    for the CLIP's depth (ViT-B: 9 / 4 / 4..10; ViT-L: 17 / 7 / 9..19), an error for any other depth.
    ``agg_beta`` is SC-CLIP's aggregation threshold (the spec's ``beta`` is ProxyCLIP's)."""

    name: ClassVar[str] = "scclip"
    description: ClassVar[str] = "SC-CLIP: LOF repair, multi-level aggregation, mixed last-block attention"

    pre_layer: int = option(0, "block of the pre-aggregation similarity (0: published)", low=0, high=1000)
    post_layer: int = option(0, "block of the post-aggregation similarity (0: published)", low=0, high=1000)
    multi_start_layer: int = option(0, "first block of the multi-level sum (0: published)", low=0, high=1000)
    multi_end_layer: int = option(0, "last block of the multi-level sum (0: published)", low=0, high=1000)
    agg_beta: float = option(0.4, "threshold of the row-normalised aggregation", low=0.0, high=1.0)
    res_cls: float = option(0.3, "weight of the residual CLS token (ViT-L: 0.1)", low=0.0, high=1.0)
    lof: str = option("official", "LOF: the repository's lof_pytorch or scikit-learn's", choices=LOF_VARIANTS)
    lof_k: int = option(30, "LOF neighbours", low=1, high=10_000)
    lof_contamination: float = option(0.05, "share of tokens LOF marks as outliers", low=1e-6, high=0.499)

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [self.pre_layer, self.post_layer, self.multi_start_layer, self.multi_end_layer]
        if any(given) and not all(given):
            raise ConfigError("options pre_layer, post_layer, multi_start_layer and multi_end_layer go together: "
                              "give all four, or none for the published indices.")

    def layers(self, n_blocks: int) -> SCCLIPLayers:
        if not self.pre_layer:
            return default_layers(n_blocks)
        return SCCLIPLayers(self.pre_layer, self.post_layer, self.multi_start_layer, self.multi_end_layer)

    def window_model(self, clip_model: nn.Module, spec: WindowSpec) -> nn.Module:
        return SCCLIPWindows(clip_model, self, spec.pos_interp)


class SCCLIPWindows(nn.Module):
    """The dense pipeline's window model with SC-CLIP's forward (`SCCLIPEncoder`, which has no proxy input)."""

    def __init__(self, clip_model: nn.Module, options: SCCLIPImageModel, pos_interp: str) -> None:
        super().__init__()
        from .clip_trunk import frozen_vision_transformer

        n_blocks = len(frozen_vision_transformer(clip_model).transformer.resblocks)
        self.encoder = SCCLIPEncoder(clip_model, options.layers(n_blocks), beta=options.agg_beta,
                                     res_cls=options.res_cls, lof_k=options.lof_k,
                                     lof_contamination=options.lof_contamination, lof=options.lof,
                                     pos_interp=pos_interp)
        self.patch_size = self.encoder.patch_size

    @property
    def pixel_mean(self) -> Tensor:
        return self.encoder.pixel_mean

    def normalise(self, images: Tensor) -> Tensor:
        return self.encoder.normalise(images)

    def forward(self, x: Tensor, proxy: Tensor | None = None) -> Tensor:
        return self.encoder(x)


@register_part
@dataclass(frozen=True)
class Talk2DINOImageModel(ImageModel):
    name: ClassVar[str] = "talk2dino"
    description: ClassVar[str] = ("Talk2DINO: DINOv2-reg patches against CLIP text projected into DINOv2 space, "
                                  "background cleaning, a constant bg_thresh channel")
    builder: ClassVar[str] = "methods.pipelines.talk2dino:build_talk2dino"
    background: ClassVar[str] = "bg_thresh"  # the record's name of the `bg-thresh` decision

    projection_weights: str = option("weights/vitb_mlp_infonce.pth", "the projection MLP's file (official "
                                     "vitb_mlp_infonce.pth), or 'random' for tests and timing")
    dinov2_arch: str = option(DINOV2_ARCH, "DINOv2 architecture (timm)")
    dinov2_weights: str = option(DINOV2_TAG, "DINOv2 weights: the timm tag, a file, or 'random'")
    bg_thresh: float = part_option(ConstantBackground, "bg_thresh")  # declared by the decision
    bg_clean: bool = option(True, "background cleaning with the CLS attention heads")
    lambda_bg: float = option(0.2, "weight of the background cleaning", low=0.0, high=10.0)
    text_templates: str = option("talk2dino-7", "TCL's sub_imagenet_template (7), not the spec's templates",
                                 choices=("talk2dino-7",))

    def weights_problems(self, spec: WindowSpec) -> list[str]:
        return [p for p in [projection_problem(self.projection_weights)] if p]

    def decision(self) -> ConstantBackground:
        """The background decision this image model carries (a part of kind decision)."""
        return ConstantBackground(bg_thresh=self.bg_thresh)


def describe_background(part: ImageModel, spec: WindowSpec) -> str:
    """The background decision a spec runs with, for the record: ``bg_thresh``, or ``prob_thd`` when set, else
    the maximum over the background queries of the name file (no threshold)."""
    if part.background == "bg_thresh":
        return "bg_thresh"
    return "prob_thd" if spec.prob_thd > 0 else "background queries"
