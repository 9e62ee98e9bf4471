"""Talk2DINO (ICCV 2025; lorebianchi98/Talk2DINO @4918c2d): DINOv2 ViT-B/14 with registers as the image side, CLIP's
text tower (OpenAI ViT-B/16) mapped into DINOv2's space by the learned projection, background cleaning, PAMR and the
`bg_thresh` background decision (`methods/pipelines/talk2dino.py`). TCL / GroupViT lineage (mmseg 0.30, cv2
resize): short side 448, windows 448 / 224, catalog class names."""

from ..training_free import TrainingFreePlugin

TALK2DINO_PAMR_DILATIONS = (1, 2, 4, 8, 12, 24)

# image_model: talk2dino (components/image_models.py) holds the projection file, DINOv2 and bg_thresh options and
# names its pipeline (pipelines/talk2dino.py).
TALK2DINO = TrainingFreePlugin(
    "talk2dino", "Talk2DINO (ICCV'25): DINOv2 patches against CLIP text projected into DINOv2 space, bg_thresh",
    source="lorebianchi98/Talk2DINO @4918c2d: src/model.py, src/open_vocabulary_segmentation/models/dinotext/, "
           "configs/vitb_mlp_infonce.yaml, configs/voc_bg/eval_voc_bg_pamr.yml",
    image_model="talk2dino", clip_arch="ViT-B-16-quickgelu", clip_weights="openai", names="plain", resize="cv2",
    short_side=448, mode="slide", crop=448, stride=224, pamr=True, pamr_steps=10,
    pamr_dilations=list(TALK2DINO_PAMR_DILATIONS))
