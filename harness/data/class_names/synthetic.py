"""Class lists of the synthetic datasets (see `harness.data.synthetic` for how each class looks).

Every class is a named, visually distinct shape ("things") or texture ("stuff"), so a small model can learn
them from a few images and a zero-shot split (seen vs unseen shapes/textures) is meaningful.
"""

# COCO-Stuff raw format: things and stuff; unseen = two shapes and one texture, like COCO's
# novel things + novel stuff. Raw values live in the COCO "id - 1" space (all of them used ids).
SYNTHETIC_COCO_NAMES: tuple[str, ...] = (
    "red disc", "blue square", "green triangle", "yellow star", "purple ring", "orange cross",
    "striped floor", "checkered wall", "dotted carpet", "gradient sky", "wavy water",
)
SYNTHETIC_COCO_RAW: tuple[int, ...] = (0, 2, 6, 15, 19, 24, 91, 100, 117, 156, 177)
SYNTHETIC_COCO_UNSEEN: tuple[int, ...] = (2, 5, 10)  # green triangle, orange cross, wavy water

# VOC raw format: objects only (background = raw 0, ignored); unseen = the last two, like VOC's last five.
SYNTHETIC_VOC_NAMES: tuple[str, ...] = (
    "red disc", "blue square", "green triangle", "yellow star", "purple ring", "orange cross",
    "cyan diamond", "white ellipse",
)
SYNTHETIC_VOC_UNSEEN: tuple[int, ...] = (6, 7)

# Pascal-Context-59 raw format (0 = background, ignored): a cross-dataset set.
SYNTHETIC_PC_NAMES: tuple[str, ...] = (
    "red disc", "blue square", "yellow star", "pink hexagon",
    "striped floor", "checkered wall", "gradient sky", "speckled sand",
)

# ADE20K raw format (0 = "other", ignored): a cross-dataset set sharing some classes with synthetic_coco.
SYNTHETIC_ADE_NAMES: tuple[str, ...] = (
    "red disc", "cyan diamond", "pink hexagon", "white ellipse",
    "checkered wall", "gradient sky", "striped floor", "wavy water", "speckled sand", "grid tiles",
)
