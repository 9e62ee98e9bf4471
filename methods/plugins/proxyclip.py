"""ProxyCLIP (ECCV'24): the last block attends with DINO ViT-B/8 feature similarity (beta 1.2, gamma 3), CLIP
values resized to DINO's grid, residual and FFN dropped; windows 336/112 padded to 56, short side 336 (448 on ADE,
PC-459, A-847 and Cityscapes, with 224/112 windows there), its own background thresholds (TRAINING_FREE_SPEC 2)."""

from ..training_free import TrainingFreePlugin

PROXYCLIP = TrainingFreePlugin(
    "proxyclip", "ProxyCLIP (ECCV'24): attention from DINO ViT-B/8 features (beta 1.2, gamma 3), residual/FFN dropped",
    source="mc-lan/ProxyCLIP @e7b767f: open_clip/transformer.py, proxyclip_segmentor.py, configs/cfg_*.py",
    attention="proxy", beta=1.2, gamma=3.0, residual="drop", ffn="drop", names="proxyclip",
    short_side=336, mode="slide", crop=336,
    stride=112, pad_to=56, tau=40.0, dino_arch="vit_base_patch8_224", dino_weights="dino",
    per_dataset={"voc_21": {"prob_thd": 0.2}, "pc_60": {"prob_thd": 0.15}, "coco_object": {"prob_thd": 0.25},
                 "ade_150": {"short_side": 448}, "pc_459": {"short_side": 448}, "ade_847": {"short_side": 448},
                 "cityscapes": {"short_side": 448, "crop": 224, "stride": 112}})
