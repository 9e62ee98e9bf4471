"""SimBaseline (Xu et al., METHOD_SPEC 3): the same proposal network, CLIP on every non-empty masked crop
(N' passes), geometric ensemble with lambda per dataset as the official configs: 0.8 COCO-Stuff zero-shot,
0.7 VOC-15, 0.4 VOC-20 and PC-59 cross-dataset, 0.5 ADE-150; test short side 640."""

from ..plugin import Plugin

SIMBASELINE = Plugin(
    "simbaseline", "multi-pass: CLIP on each masked crop + geometric ensemble",
    kind="multi-pass", text_prompt="offline", test_short_side=640, default_lambda=0.8,
    ensemble_lambda={"coco_stuff_171": 0.8, "voc_20": 0.7, "pc_59": 0.4, "ade_150": 0.5,
                     "synthetic_coco": 0.8, "synthetic_voc": 0.7},
)
