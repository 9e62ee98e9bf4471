"""SCLIP (ECCV'24): correlative self-attention softmax(qq^T) + softmax(kk^T) in the last block, residual and FFN
kept; the repository's per-dataset settings (tau 65 on VOC-21 with area_thd 0.1, 50 on PC-60 and Object; short side
448 for COCO-Stuff, 560 for Cityscapes), TRAINING_FREE_SPEC 2."""

from ..training_free import TrainingFreePlugin
from ..training_free_spec import SCLIP_PROTOCOL

SCLIP = TrainingFreePlugin(
    "sclip", "SCLIP (ECCV'24): softmax(q q^T) + softmax(k k^T), residual and FFN kept",
    source="wangf3014/SCLIP @b56bd30: clip/model.py, configs/cfg_*.py",
    attention="qq+kk", residual="keep", ffn="keep", **SCLIP_PROTOCOL,
    per_dataset={"voc_21": {"tau": 65.0, "prob_thd": 0.1, "area_thd": 0.1},
                 "pc_60": {"tau": 50.0, "prob_thd": 0.1}, "coco_object": {"tau": 50.0, "prob_thd": 0.1},
                 "coco_stuff_171": {"short_side": 448}, "cityscapes": {"short_side": 560}})
