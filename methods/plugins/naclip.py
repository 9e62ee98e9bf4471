"""NACLIP (WACV'25, repository v2): key-key attention plus a Gaussian neighbourhood (sigma 5 patches), residual and
FFN dropped, PAMR on (10 steps, dilations 8 and 16); VOC-21 and VOC-20 whole image, else the SCLIP protocol."""

from ..training_free import TrainingFreePlugin
from ..training_free_spec import SCLIP_PROTOCOL

NACLIP = TrainingFreePlugin(
    "naclip", "NACLIP (WACV'25, v2): softmax(k k^T + Gaussian, sigma 5), residual and FFN dropped, PAMR",
    source="sinahmr/NACLIP @0cac3a6 (v2): clip/model.py, naclip.py, pamr.py, configs/cfg_*.py",
    attention="kk+gauss", sigma=5.0, residual="drop", ffn="drop", **SCLIP_PROTOCOL,
    pamr=True, pamr_steps=10, pamr_dilations=[8, 16],
    per_dataset={"voc_21": {"mode": "whole", "prob_thd": 0.1}, "voc_20": {"mode": "whole"},
                 "pc_60": {"prob_thd": 0.1}, "coco_object": {"prob_thd": 0.1}, "cityscapes": {"short_side": 560}})
