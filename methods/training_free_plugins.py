"""The training-free plugins: vanilla dense CLIP, MaskCLIP, SCLIP, ClearCLIP, NACLIP, ProxyCLIP (TRAINING_FREE_SPEC).

Each one is data: its last-block rule and its public repository's settings, with the repository and commit
they were read from (TRAINING_FREE_SPEC 1-2). Dataset names are the catalog's (`voc_21`, `pc_60`,
`coco_object`, `cityscapes`, `coco_stuff_171`, ...): `per_dataset` applies where the benchmark's dataset has that
name. Background thresholds are set only for the benchmarks with a background class (VOC-21, PC-60, Object).
"""

from .training_free import TrainingFreePlugin

# The SCLIP protocol (SCLIP @b56bd30 configs): short side 336, windows 224/112, tau 40, prob_thd 0.1 with background.
_SCLIP_PROTOCOL = {"short_side": 336, "mode": "slide", "crop": 224, "stride": 112, "tau": 40.0}
_BACKGROUND_01 = {"voc_21": {"prob_thd": 0.1}, "pc_60": {"prob_thd": 0.1}, "coco_object": {"prob_thd": 0.1}}

CLIP = TrainingFreePlugin(
    "clip", "vanilla dense CLIP: last-block softmax(q k^T), residual and FFN kept, no training",
    source="SCLIP protocol (wangf3014/SCLIP @b56bd30 configs), as CLIP is re-run in ResCLIP's tables",
    attention="qk", residual="keep", ffn="keep", **_SCLIP_PROTOCOL, per_dataset=_BACKGROUND_01)

MASKCLIP = TrainingFreePlugin(
    "maskclip", "MaskCLIP (ECCV'22): last-block identity attention (= GPS alpha 1), residual and FFN kept",
    source="chongzhou96/MaskCLIP @245d31f (rule); settings: the SCLIP protocol as the SCLIP family re-runs it",
    attention="identity", residual="keep", ffn="keep", **_SCLIP_PROTOCOL, per_dataset=_BACKGROUND_01)

SCLIP = TrainingFreePlugin(
    "sclip", "SCLIP (ECCV'24): softmax(q q^T) + softmax(k k^T), residual and FFN kept",
    source="wangf3014/SCLIP @b56bd30: clip/model.py, configs/cfg_*.py",
    attention="qq+kk", residual="keep", ffn="keep", **_SCLIP_PROTOCOL,
    per_dataset={"voc_21": {"tau": 65.0, "prob_thd": 0.1, "area_thd": 0.1},
                 "pc_60": {"tau": 50.0, "prob_thd": 0.1}, "coco_object": {"tau": 50.0, "prob_thd": 0.1},
                 "coco_stuff_171": {"short_side": 448}, "cityscapes": {"short_side": 560}})

CLEARCLIP = TrainingFreePlugin(
    "clearclip", "ClearCLIP (ECCV'24): softmax(q q^T), residual and FFN dropped",
    source="mc-lan/ClearCLIP @ad68a40: open_clip/transformer.py, configs/cfg_*.py",
    attention="qq", residual="drop", ffn="drop", short_side=448, mode="slide", crop=448, stride=224, pad_to=16,
    tau=50.0,
    per_dataset={"voc_21": {"prob_thd": 0.5}, "pc_60": {"prob_thd": 0.15}, "coco_object": {"prob_thd": 0.4},
                 "cityscapes": {"crop": 224, "stride": 224}})

NACLIP = TrainingFreePlugin(
    "naclip", "NACLIP (WACV'25, v2): softmax(k k^T + Gaussian, sigma 5), residual and FFN dropped, PAMR",
    source="sinahmr/NACLIP @0cac3a6 (v2): clip/model.py, naclip.py, pamr.py, configs/cfg_*.py",
    attention="kk+gauss", sigma=5.0, residual="drop", ffn="drop", **_SCLIP_PROTOCOL,
    pamr=True, pamr_steps=10, pamr_dilations=[8, 16],
    per_dataset={"voc_21": {"mode": "whole", "prob_thd": 0.1}, "voc_20": {"mode": "whole"},
                 "pc_60": {"prob_thd": 0.1}, "coco_object": {"prob_thd": 0.1}, "cityscapes": {"short_side": 560}})

PROXYCLIP = TrainingFreePlugin(
    "proxyclip", "ProxyCLIP (ECCV'24): attention from DINO ViT-B/8 features (beta 1.2, gamma 3), residual/FFN dropped",
    source="mc-lan/ProxyCLIP @e7b767f: open_clip/transformer.py, proxyclip_segmentor.py, configs/cfg_*.py",
    attention="proxy", beta=1.2, gamma=3.0, residual="drop", ffn="drop", short_side=336, mode="slide", crop=336,
    stride=112, pad_to=56, tau=40.0, dino_arch="vit_base_patch8_224", dino_weights="dino",
    per_dataset={"voc_21": {"prob_thd": 0.2}, "pc_60": {"prob_thd": 0.15}, "coco_object": {"prob_thd": 0.25},
                 "ade_150": {"short_side": 448}, "pc_459": {"short_side": 448}, "ade_847": {"short_side": 448},
                 "cityscapes": {"short_side": 448, "crop": 224, "stride": 112}})
