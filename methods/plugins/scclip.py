"""SC-CLIP (arXiv 2411.15869; SuleBai/SC-CLIP @0417ba9): NACLIP's successor in the last block, no extra model. LOF
outlier repair, layer-9 pre-aggregation, the mixed attention, layer-4 post-aggregation, the multi-level pass and
residual CLS 0.3 (`methods/components/scclip.py`); the SCLIP protocol with its own per-dataset settings
(configs/cfg_*.py: tau 50 / 55 and prob_thd 0.15 / 0.15 / 0.35 on VOC-21 / PC-60 / Object, area_thd 0.1 on VOC-21,
short side 560 on Cityscapes)."""

from __future__ import annotations

from typing import Any

from ..training_free import TrainingFreePlugin
from ..training_free_spec import SCLIP_PROTOCOL


def _per_dataset() -> dict[str, dict[str, Any]]:
    return {"voc_21": {"tau": 50.0, "prob_thd": 0.15, "area_thd": 0.1}, "pc_60": {"prob_thd": 0.15},
            "coco_object": {"tau": 55.0, "prob_thd": 0.35}, "cityscapes": {"short_side": 560}}


# image_model: scclip (components/image_models.py) carries the SC-CLIP options (layer indices, agg_beta, res_cls,
# lof, lof_k, lof_contamination); the spec's attention / residual / ffn do not describe its last block.
SCCLIP = TrainingFreePlugin(
    "scclip", "SC-CLIP (arXiv 2411.15869): LOF repair, multi-level aggregation, mixed last-block attention",
    source="SuleBai/SC-CLIP @0417ba9: clip/model.py L208-373, scclip_segmentor.py, configs/cfg_*.py",
    image_model="scclip", attention="identity", residual="drop", ffn="drop", **SCLIP_PROTOCOL,
    per_dataset=_per_dataset())
