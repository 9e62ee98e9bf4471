"""SC-CLIP (arXiv 2411.15869; SuleBai/SC-CLIP @0417ba9): NACLIP's successor in the last block, no extra model. LOF
outlier repair, layer-9 pre-aggregation, the mixed attention, layer-4 post-aggregation, the multi-level pass and
residual CLS 0.3 (`methods/components/scclip.py`); the SCLIP protocol with its own per-dataset settings
(configs/cfg_*.py: tau 50 / 55 and prob_thd 0.15 / 0.15 / 0.35 on VOC-21 / PC-60 / Object, area_thd 0.1 on VOC-21,
short side 560 on Cityscapes)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from harness.errors import ConfigError

from ..components.scclip import LOF_VARIANTS, SCCLIPEncoder, SCCLIPLayers, default_layers
from ..extended_plugin import ExtendedPlugin, check_number
from ..training_free_spec import SCLIP_PROTOCOL


@dataclass(frozen=True)
class SCCLIPOptions:
    """Blocks are 1-based (block b = the output of the b-th residual block); all four 0 = the published indices
    for the CLIP's depth (ViT-B: 9 / 4 / 4..10; ViT-L: 17 / 7 / 9..19), an error for any other depth."""

    pre_layer: int = 0
    post_layer: int = 0
    multi_start_layer: int = 0
    multi_end_layer: int = 0
    beta: float = 0.4
    res_cls: float = 0.3  # ViT-L: 0.1 (SuleBai/SC-CLIP#5)
    lof: str = "official"
    lof_k: int = 30
    lof_contamination: float = 0.05
    last_block: str = "scclip"  # recorded: the spec's attention/residual/ffn fields do not describe this block

    def __post_init__(self) -> None:
        if self.last_block != "scclip":
            raise ConfigError(f"option last_block={self.last_block!r}: this plugin's last block is 'scclip'.")
        for name in ("pre_layer", "post_layer", "multi_start_layer", "multi_end_layer"):
            check_number(name, getattr(self, name), 0, 1000, integer=True)
        given = [getattr(self, n) for n in ("pre_layer", "post_layer", "multi_start_layer", "multi_end_layer")]
        if any(given) and not all(given):
            raise ConfigError("options pre_layer, post_layer, multi_start_layer and multi_end_layer go together: "
                              "give all four, or none for the published indices.")
        check_number("beta", self.beta, 0.0, 1.0)
        check_number("res_cls", self.res_cls, 0.0, 1.0)
        check_number("lof_k", self.lof_k, 1, 10_000, integer=True)
        check_number("lof_contamination", self.lof_contamination, 1e-6, 0.499)
        if self.lof not in LOF_VARIANTS:
            raise ConfigError(f"option lof={self.lof!r} is not one of {', '.join(LOF_VARIANTS)}.")

    def layers(self, n_blocks: int) -> SCCLIPLayers:
        if not self.pre_layer:
            return default_layers(n_blocks)
        return SCCLIPLayers(self.pre_layer, self.post_layer, self.multi_start_layer, self.multi_end_layer)

    def weights_problems(self, spec) -> list[str]:
        return []


class SCCLIPWindows(nn.Module):
    """The dense pipeline's window model with SC-CLIP's forward (normalise, patch_size and pixel_mean of the
    frozen trunk it replaces)."""

    def __init__(self, trunk: nn.Module, options: SCCLIPOptions, pos_interp: str) -> None:
        super().__init__()
        n_blocks = len(trunk.visual.transformer.resblocks)
        self.encoder = SCCLIPEncoder(trunk.visual, options.layers(n_blocks), beta=options.beta,
                                     res_cls=options.res_cls, lof_k=options.lof_k,
                                     lof_contamination=options.lof_contamination, lof=options.lof,
                                     pos_interp=pos_interp)
        self.patch_size = trunk.patch_size
        self.register_buffer("pixel_mean", trunk.pixel_mean.clone(), persistent=False)
        self.register_buffer("pixel_std", trunk.pixel_std.clone(), persistent=False)

    def normalise(self, images: Tensor) -> Tensor:
        return (images.float() - self.pixel_mean) / self.pixel_std

    def forward(self, x: Tensor, proxy: Tensor | None = None) -> Tensor:
        return self.encoder(x)


def build_scclip(name: str, spec, options: SCCLIPOptions, env, random_fallback: bool):
    from ..pipelines.dense import build_training_free

    fitted = build_training_free(name, spec, env, random_fallback)
    segmenter = fitted.segmenter
    segmenter.clip = SCCLIPWindows(segmenter.clip, options, spec.pos_interp).to(segmenter.device)
    return dataclasses.replace(fitted, segmenter=segmenter)


def _per_dataset() -> dict[str, dict[str, Any]]:
    return {"voc_21": {"tau": 50.0, "prob_thd": 0.15, "area_thd": 0.1}, "pc_60": {"prob_thd": 0.15},
            "coco_object": {"tau": 55.0, "prob_thd": 0.35}, "cityscapes": {"short_side": 560}}


SCCLIP = ExtendedPlugin(
    "scclip", "SC-CLIP (arXiv 2411.15869): LOF repair, multi-level aggregation, mixed last-block attention",
    source="SuleBai/SC-CLIP @0417ba9: clip/model.py L208-373, scclip_segmentor.py, configs/cfg_*.py",
    extra_type=SCCLIPOptions, build=build_scclip, attention="identity", residual="drop", ffn="drop",
    **SCLIP_PROTOCOL, per_dataset=_per_dataset())
