"""The dataset catalog: one `DatasetInfo` per benchmark, registered in `harness.registries.DATASETS`.

Importing this module registers every entry (it is the registry's plugin module). Facts and their sources
are in METHOD_SPEC §10 (data) and §8 / §1 (train and test settings); the class lists are verbatim in
`harness.data.class_names`.

Test-time sizes: DeOP evaluates with the shortest side 512 (METHOD_SPEC §4, §13.5); the maximum long side is
the official config's MAX_SIZE_TEST (COCO 2560; VOC and the cross-dataset sets 2048, zsseg
``configs/{pcontext-59,ade20k-150}/cross_dataset_test_only.yaml``). Training settings are DeOP's
(METHOD_SPEC §8): shortest side int(x * 0.1 * 512) for x = 5..15, SSD colour jitter, flip, fixed 512 output.
"""

from __future__ import annotations

from harness.registries import DATASETS

from .class_names.ade20k import ADE_150_NAMES, ADE_847_NAMES
from .class_names.coco_stuff import COCO_STUFF_CATEGORIES, COCO_STUFF_UNSEEN_RAW
from .class_names.miniworld import (
    MINIWORLD_BG_NAMES,
    MINIWORLD_BG_RAW,
    MINIWORLD_BG_STUFF_RAW,
    MINIWORLD_NAMES,
    MINIWORLD_RAW,
    MINIWORLD_UNSEEN,
)
from .class_names.pascal import PC_59_NAMES, PC_459_NAMES, VOC_20_NAMES, VOC_20_UNSEEN
from .class_names.synthetic import (
    SYNTHETIC_ADE_NAMES,
    SYNTHETIC_COCO_NAMES,
    SYNTHETIC_COCO_RAW,
    SYNTHETIC_COCO_UNSEEN,
    SYNTHETIC_PC_NAMES,
    SYNTHETIC_VOC_NAMES,
    SYNTHETIC_VOC_UNSEEN,
)
from .class_names.training_free import (
    CITYSCAPES_NAMES,
    CITYSCAPES_RAW,
    COCO_OBJECT_NAMES,
    COCO_OBJECT_RAW,
    COCO_STUFF_RAW,
    PC_60_NAMES,
    VOC_21_NAMES,
)
from .info import DatasetInfo, Layout, SplitLayout, TrainSettings

DEOP_MIN_SIZES_512: tuple[int, ...] = tuple(int(x * 0.1 * 512) for x in range(5, 16))  # 256..768

# -- zero-shot benchmarks (paper Table 1) --------------------------------------------------------------
COCO_STUFF_171 = DatasetInfo(
    name="coco_stuff_171",
    title="COCO-Stuff-171 (156 seen / 15 unseen)",
    class_names=tuple(name for _, name, _ in COCO_STUFF_CATEGORIES),
    raw_ids=tuple(cid - 1 for cid, _, _ in COCO_STUFF_CATEGORIES),
    unseen=tuple(i for i, (cid, _, _) in enumerate(COCO_STUFF_CATEGORIES) if cid - 1 in COCO_STUFF_UNSEEN_RAW),
    raw_format="coco_stuff",
    layout=Layout(
        train=SplitLayout("coco/train2017", "coco/stuffthingmaps_detectron2/train2017_base"),
        val=SplitLayout("coco/val2017", "coco/stuffthingmaps_detectron2/val2017"),
    ),
    test_short_side=512,
    test_max_size=2560,
    # 640 random crop, then the mapper's fixed 512 "padding" trims it to 512x512 (METHOD_SPEC §8, §12.10)
    train=TrainSettings(DEOP_MIN_SIZES_512, max_size=2560, crop_size=640, size_divisibility=512),
    source="METHOD_SPEC §10.1; register_coco_stuff.py L9-196; prepare_coco_stuff_164k_sem_seg.py",
)

VOC_20 = DatasetInfo(
    name="voc_20",
    title="PASCAL VOC 2012 aug, 20 classes (15 seen / 5 unseen)",
    class_names=VOC_20_NAMES,
    raw_ids=tuple(range(1, 21)),  # SegmentationClassAug: 0 background (-> ignore), 1..20 classes
    unseen=VOC_20_UNSEEN,
    raw_format="voc_aug",
    layout=Layout(
        train=SplitLayout("VOC2012/JPEGImages", "VOC2012/annotations_detectron2/train_base"),
        val=SplitLayout("VOC2012/JPEGImages", "VOC2012/annotations_detectron2/val"),
    ),
    test_short_side=512,
    test_max_size=2048,
    train=TrainSettings(DEOP_MIN_SIZES_512, max_size=2048, crop_size=512, size_divisibility=512),
    source="METHOD_SPEC §10.2, §1 (VOC base: crop 512, test 512 / max 2048); prepare_voc_sem_seg.py",
    notes=("background (raw 0) is ignored everywhere; no background class is predicted",),
)

# -- cross-dataset benchmarks (paper Table 2): evaluated only, no unseen split ---------------------------
PC_59 = DatasetInfo(
    name="pc_59",
    title="Pascal-Context-59",
    class_names=PC_59_NAMES,
    raw_ids=tuple(range(1, 60)),  # 0 background -> ignore (the official prep's label - 1 in uint8)
    raw_format="pcontext59",
    layout=Layout(
        train=SplitLayout("pcontext/train/image", "pcontext/train/label"),
        val=SplitLayout("pcontext/val/image", "pcontext/val/label"),
    ),
    source="METHOD_SPEC §10.3; register_pcontext.py; prepare_pcontext_sem_seg.py",
)

ADE_150 = DatasetInfo(
    name="ade_150",
    title="ADE20K-150",
    class_names=ADE_150_NAMES,
    raw_ids=tuple(range(1, 151)),  # 0 "other" -> ignore (prep subtracts 1)
    raw_format="ade20k",
    layout=Layout(
        train=SplitLayout(
            "ADEChallengeData2016/images/training", "ADEChallengeData2016/annotations_detectron2/training"
        ),
        val=SplitLayout(
            "ADEChallengeData2016/images/validation", "ADEChallengeData2016/annotations_detectron2/validation"
        ),
    ),
    source="METHOD_SPEC §10.3; detectron2 builtin ade20k_sem_seg_val, prepare_ade20k_sem_seg.py",
)

PC_459 = DatasetInfo(
    name="pc_459",
    title="Pascal-Context-459",
    class_names=PC_459_NAMES,
    raw_format=None,  # the official prep needs the Detail API; place the prepared TIFFs yourself
    ignore_index=65535,  # 16-bit TIFF labels
    layout=Layout(val=SplitLayout("pcontext-459/JPEGImages", "pcontext-459/pc459_val", label_suffix=".tif")),
    source="METHOD_SPEC §10.3; [D] register_pcontext.py (pascal_context_459_sem_seg_val)",
)

ADE_847 = DatasetInfo(
    name="ade_847",
    title="ADE20K-847 (ADE20K_2021_17_01)",
    class_names=ADE_847_NAMES,
    raw_format=None,  # prepared by MaskFormer's prepare_ade20k_full_sem_seg.py (16-bit TIFF)
    ignore_index=65535,
    layout=Layout(
        train=SplitLayout(
            "ADE20K_2021_17_01/images_detectron2/training",
            "ADE20K_2021_17_01/annotations_detectron2/training",
            label_suffix=".tif",
        ),
        val=SplitLayout(
            "ADE20K_2021_17_01/images_detectron2/validation",
            "ADE20K_2021_17_01/annotations_detectron2/validation",
            label_suffix=".tif",
        ),
    ),
    source="METHOD_SPEC §10.3; [D] register_ade20k_full.py (ade20k_full_sem_seg_val)",
)

# -- the training-free family's benchmarks (TRAINING_FREE_SPEC §2): val only, no zero-shot split ---------------
# Test sizes here are the family's most common (short side 336, long side capped at 2048); its methods set their
# own per repository. `has_background`: class 0 is a scored background class (the "with background" columns).
VOC_21 = DatasetInfo(
    name="voc_21",
    title="PASCAL VOC 2012 val, 20 classes + background",
    class_names=VOC_21_NAMES,
    raw_ids=tuple(range(21)),  # SegmentationClass palette index: 0 background, 1..20; 255 borders -> ignore
    raw_format="voc2012",
    layout=Layout(val=SplitLayout("VOC2012/JPEGImages", "VOC2012/annotations_voc21/val")),
    test_short_side=336,
    has_background=True,
    official_samples=(("val", 1449),),
    source="TRAINING_FREE_SPEC §2; mmseg PascalVOCDataset (SegmentationClass, ImageSets/Segmentation/val.txt)",
)

PC_60 = DatasetInfo(
    name="pc_60",
    title="Pascal-Context-60 (59 classes + background)",
    class_names=PC_60_NAMES,
    raw_ids=tuple(range(60)),  # SegmentationClassContext: 0 background, 1..59 in PC-59's order
    raw_format="pcontext59",
    layout=Layout(val=SplitLayout("pcontext/val/image", "pcontext/val/label60")),
    test_short_side=336,
    has_background=True,
    official_samples=(("val", 5105),),
    source="TRAINING_FREE_SPEC §2; mmseg PascalContextDataset (reduce_zero_label=False)",
)

COCO_OBJECT = DatasetInfo(
    name="coco_object",
    title="COCO-Object (COCO-Stuff-164k val: 80 things + background)",
    class_names=COCO_OBJECT_NAMES,
    raw_ids=COCO_OBJECT_RAW,  # 255 (unlabeled) -> background, things (COCO id - 1) -> 1..80
    background_raw_ids=COCO_STUFF_RAW,  # every stuff value -> background
    raw_format="coco_stuff",
    layout=Layout(val=SplitLayout("coco/val2017", "coco/objectmaps_detectron2/val2017")),
    test_short_side=336,
    has_background=True,
    official_samples=(("val", 5000),),
    source="TRAINING_FREE_SPEC §2; SCLIP/NACLIP datasets/cvt_coco_object.py (from GroupViT): keys > 90 and 255 "
           "-> 0; SCLIP custom_datasets.py COCOObjectDataset (reduce_zero_label=False)",
    notes=("COCO's unlabeled pixels (255) are background here, not ignored, as the official conversion does",
           "raw values of no COCO category (11, 25, ...) do not occur in the official maps; here they are ignored "
           "(the official script would leave them as they are)"),
)

CITYSCAPES = DatasetInfo(
    name="cityscapes",
    title="Cityscapes (gtFine val, 19 classes)",
    class_names=CITYSCAPES_NAMES,
    raw_ids=CITYSCAPES_RAW,  # labelIds of trainIds 0..18; every other labelId -> ignore
    raw_format="cityscapes",
    layout=Layout(val=SplitLayout("cityscapes/images/val", "cityscapes/annotations_detectron2/val",
                                  image_suffix=".png")),
    test_short_side=560,
    official_samples=(("val", 500),),
    source="TRAINING_FREE_SPEC §2; cityscapesScripts helpers/labels.py (labelId -> trainId); mmseg "
           "CityscapesDataset",
)

# -- synthetic datasets in the real raw formats (profile `smoke`; see harness.data.synthetic) ----------------
_SYNTHETIC_TRAIN = TrainSettings((48, 56, 64, 72, 80), max_size=160, crop_size=64, size_divisibility=64)


def _synthetic(name: str, title: str, names: tuple[str, ...], raw_format: str, base: dict[str, str],
               raw_ids: tuple[int, ...] | None = None, unseen: tuple[int, ...] = ()) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        title=title,
        class_names=names,
        raw_ids=raw_ids or tuple(range(1, len(names) + 1)),
        unseen=unseen,
        raw_format=raw_format,
        layout=Layout(train=SplitLayout(base["train_images"], base["train_labels"]),
                      val=SplitLayout(base["val_images"], base["val_labels"])),
        test_short_side=64,
        test_max_size=160,
        train=_SYNTHETIC_TRAIN,
        synthetic=True,
        source="harness.data.synthetic (written in the official raw format, prepared by the real converter)",
    )


SYNTHETIC_COCO = _synthetic(
    "synthetic_coco", "Synthetic shapes + textures, COCO-Stuff format", SYNTHETIC_COCO_NAMES, "coco_stuff",
    {"train_images": "synthetic_coco/train2017",
     "train_labels": "synthetic_coco/stuffthingmaps_detectron2/train2017_base",
     "val_images": "synthetic_coco/val2017", "val_labels": "synthetic_coco/stuffthingmaps_detectron2/val2017"},
    raw_ids=SYNTHETIC_COCO_RAW, unseen=SYNTHETIC_COCO_UNSEEN,
)
SYNTHETIC_VOC = _synthetic(
    "synthetic_voc", "Synthetic shapes, VOC aug format", SYNTHETIC_VOC_NAMES, "voc_aug",
    {"train_images": "synthetic_voc/JPEGImages", "train_labels": "synthetic_voc/annotations_detectron2/train_base",
     "val_images": "synthetic_voc/JPEGImages", "val_labels": "synthetic_voc/annotations_detectron2/val"},
    unseen=SYNTHETIC_VOC_UNSEEN,
)
SYNTHETIC_PC = _synthetic(
    "synthetic_pc", "Synthetic shapes + textures, Pascal-Context format", SYNTHETIC_PC_NAMES, "pcontext59",
    {"train_images": "synthetic_pc/train/image", "train_labels": "synthetic_pc/train/label",
     "val_images": "synthetic_pc/val/image", "val_labels": "synthetic_pc/val/label"},
)
SYNTHETIC_ADE = _synthetic(
    "synthetic_ade", "Synthetic shapes + textures, ADE20K format", SYNTHETIC_ADE_NAMES, "ade20k",
    {"train_images": "synthetic_ade/images/training",
     "train_labels": "synthetic_ade/annotations_detectron2/training",
     "val_images": "synthetic_ade/images/validation",
     "val_labels": "synthetic_ade/annotations_detectron2/validation"},
)

# MiniWorld (issue 9): named stuff and things with a seen/unseen split, for the `miniworld` profile, whose tiny
# CLIP is pretrained on captions of the same world (harness.data.miniworld). 64 px scenes, like the smoke sets.
MINIWORLD = DatasetInfo(
    name="miniworld",
    title="MiniWorld (15 seen / 5 unseen; drawn scenes, COCO-Stuff format)",
    class_names=MINIWORLD_NAMES,
    raw_ids=MINIWORLD_RAW,
    unseen=MINIWORLD_UNSEEN,
    raw_format="coco_stuff",
    layout=Layout(
        train=SplitLayout("miniworld/train2017", "miniworld/stuffthingmaps_detectron2/train2017_base"),
        val=SplitLayout("miniworld/val2017", "miniworld/stuffthingmaps_detectron2/val2017"),
    ),
    test_short_side=64,
    test_max_size=160,
    train=_SYNTHETIC_TRAIN,
    synthetic=True,
    appearances="harness.data.miniworld.world:APPEARANCES",
    source="harness.data.miniworld (drawn by harness.data.synthetic, written in COCO-Stuff's raw format, "
           "prepared by the real converter)",
)

# MiniWorld with background (issue 15): the same drawn scenes, converted as COCO-Object is (stuff -> class 0
# "background"), so the training-free family's background query and prob_thd run with real signal on a CPU.
# Evaluation only (a val split); its appearances draw the stuff textures as the background.
MINIWORLD_BG = DatasetInfo(
    name="miniworld_bg",
    title="MiniWorld-BG (MiniWorld's things + background = its 8 stuff classes; COCO-Object's conversion)",
    class_names=MINIWORLD_BG_NAMES,
    raw_ids=MINIWORLD_BG_RAW,
    background_raw_ids=MINIWORLD_BG_STUFF_RAW,
    raw_format="coco_stuff",
    layout=Layout(val=SplitLayout("miniworld_bg/val2017", "miniworld_bg/objectmaps_detectron2/val2017")),
    test_short_side=64,
    test_max_size=160,
    has_background=True,
    synthetic=True,
    appearances="harness.data.miniworld.world:APPEARANCES_BG",  # MiniWorld's looks, stuff drawn as class 0
    source="harness.data.miniworld (MiniWorld's scenes; stuff -> background as COCO-Object's cvt_coco_object.py)",
)

_ENTRIES: dict[str, str] = {
    "coco_stuff_171": "COCO_STUFF_171",
    "voc_20": "VOC_20",
    "pc_59": "PC_59",
    "ade_150": "ADE_150",
    "pc_459": "PC_459",
    "ade_847": "ADE_847",
    "voc_21": "VOC_21",
    "pc_60": "PC_60",
    "coco_object": "COCO_OBJECT",
    "cityscapes": "CITYSCAPES",
    "synthetic_coco": "SYNTHETIC_COCO",
    "synthetic_voc": "SYNTHETIC_VOC",
    "synthetic_pc": "SYNTHETIC_PC",
    "synthetic_ade": "SYNTHETIC_ADE",
    "miniworld": "MINIWORLD",
    "miniworld_bg": "MINIWORLD_BG",
}
for _name, _attr in _ENTRIES.items():
    DATASETS.register(_name, f"harness.data.catalog:{_attr}")
