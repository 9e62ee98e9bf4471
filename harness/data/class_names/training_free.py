"""Class lists and raw label values of the benchmarks the training-free family adds (TRAINING_FREE_SPEC §2).

The class order is mmseg 1.x's (``PascalVOCDataset``, ``PascalContextDataset``, SCLIP's ``COCOObjectDataset``,
``CityscapesDataset``), which is the order every name file of the family follows line by line. Names are
the ones this catalog already uses for the same classes (VOC "diningtable", COCO "tv"), with "background" as
class 0 where the benchmark has one.
"""

from .coco_stuff import COCO_STUFF_CATEGORIES
from .pascal import PC_59_NAMES, VOC_20_NAMES

BACKGROUND = "background"

# VOC2012 SegmentationClass: 0 background, 1..20 the classes, 255 object borders / difficult (ignored).
VOC_21_NAMES: tuple[str, ...] = (BACKGROUND, *VOC_20_NAMES)

# Pascal-Context SegmentationClassContext (mmseg's converter of the Detail API): 0 background, 1..59.
PC_60_NAMES: tuple[str, ...] = (BACKGROUND, *PC_59_NAMES)

# COCO-Object (GroupViT/TCL/SCLIP ``cvt_coco_object.py``): the 80 COCO thing classes in COCO id order after a
# background class 0. Raw stuffthingmaps values are COCO id - 1: things 0..89 (with gaps), stuff 91..181,
# 255 unlabeled. That converter maps every stuff value *and* 255 to background 0 (its table sends keys > 90,
# 255 included, to 0), so COCO-Object has no ignored pixel.
COCO_THINGS: tuple[tuple[int, str], ...] = tuple((cid - 1, name) for cid, name, thing in COCO_STUFF_CATEGORIES
                                                 if thing)
COCO_STUFF_RAW: tuple[int, ...] = tuple(cid - 1 for cid, _, thing in COCO_STUFF_CATEGORIES if not thing)
COCO_UNLABELED_RAW = 255
COCO_OBJECT_NAMES: tuple[str, ...] = (BACKGROUND, *(name for _, name in COCO_THINGS))
COCO_OBJECT_RAW: tuple[int, ...] = (COCO_UNLABELED_RAW, *(raw for raw, _ in COCO_THINGS))

# Cityscapes gtFine ``*_gtFine_labelIds.png`` -> the 19 evaluation classes (cityscapesScripts
# ``helpers/labels.py``: the labels whose trainId is 0..18). Every other labelId (0-6 void, 9 parking,
# 10 rail track, 14 guard rail, 15 bridge, 16 tunnel, 18 polegroup, 29 caravan, 30 trailer) has trainId 255.
CITYSCAPES_LABEL_IDS: tuple[tuple[int, str], ...] = (
    (7, "road"), (8, "sidewalk"), (11, "building"), (12, "wall"), (13, "fence"), (17, "pole"),
    (19, "traffic light"), (20, "traffic sign"), (21, "vegetation"), (22, "terrain"), (23, "sky"),
    (24, "person"), (25, "rider"), (26, "car"), (27, "truck"), (28, "bus"), (31, "train"),
    (32, "motorcycle"), (33, "bicycle"),
)
CITYSCAPES_NAMES: tuple[str, ...] = tuple(name for _, name in CITYSCAPES_LABEL_IDS)
CITYSCAPES_RAW: tuple[int, ...] = tuple(label_id for label_id, _ in CITYSCAPES_LABEL_IDS)
