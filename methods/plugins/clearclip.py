"""ClearCLIP (ECCV'24): query-query attention, residual and FFN dropped; short side 448, windows 448/224 (224/224
on Cityscapes), windows padded to the patch size, tau 50, its own background thresholds (TRAINING_FREE_SPEC 2)."""

from ..training_free import TrainingFreePlugin

CLEARCLIP = TrainingFreePlugin(
    "clearclip", "ClearCLIP (ECCV'24): softmax(q q^T), residual and FFN dropped",
    source="mc-lan/ClearCLIP @ad68a40: open_clip/transformer.py, configs/cfg_*.py",
    attention="qq", residual="drop", ffn="drop", names="clearclip", short_side=448, mode="slide", crop=448,
    stride=224, pad_to_patch=True, tau=50.0,
    per_dataset={"voc_21": {"prob_thd": 0.5}, "pc_60": {"prob_thd": 0.15}, "coco_object": {"prob_thd": 0.4},
                 "cityscapes": {"crop": 224, "stride": 224}})
