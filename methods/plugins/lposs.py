"""LPOSS and LPOSS+ (CVPR 2025; vladan-stojnic/LPOSS @e489a74): MaskCLIP seeds propagated over one kNN graph of
DINO ViT-B/16 value features of all windows of an image; LPOSS+ adds a pixel-level propagation. MaskCLIP on OpenCLIP ViT-B/16 `laion2b_s34b_b88k` (models/maskclip: identity last block, residual
and FFN kept, positional table resized to the target grid), short side 448, windows 224/112 (mmseg 0.27 lineage:
cv2 resize), no probability threshold (the background is the maximum over its queries). The windows are coupled
by the `label-propagation` part (components/window_coupling.py), which holds the graph options."""

from ..training_free import TrainingFreePlugin

_COMMON = dict(
    source="vladan-stojnic/LPOSS @e489a74: models/lposs/lposs.py, models/maskclip/maskclip.py, "
           "segmentation/evaluation/lposs_eval.py L50-372, configs/lposs*.yaml",
    coupling="label-propagation", clip_arch="ViT-B-16", clip_weights="laion2b_s34b_b88k",
    dino_arch="vit_base_patch16_224", dino_weights="dino", attention="identity", residual="keep", ffn="keep",
    pos_interp="size", resize="cv2", short_side=448, mode="slide", crop=224, stride=112, names="sclip",
    templates="imagenet")

LPOSS = TrainingFreePlugin("lposs", "LPOSS (CVPR'25): MaskCLIP seeds, label propagation over a kNN graph of all "
                           "windows", **_COMMON)
LPOSS_PLUS = TrainingFreePlugin("lposs+", "LPOSS+ (CVPR'25): LPOSS and a pixel-level propagation on Lab colour",
                                pixel_refine=True, **_COMMON)
