"""MiniWorld's class list (see `harness.data.miniworld` for how each class looks and how scenes are drawn).

Twelve coloured "thing" shapes and eight "stuff" textures named like real-world stuff. Some things share a
colour or a shape with another thing ("green disc" vs "red disc" / "green star"), so naming a class needs
colour *and* shape, as natural words do. The unseen classes mirror COCO-Stuff's split (METHOD_SPEC §10.1):
three things and two stuff classes, and COCO's own unseen stuff includes grass and road.

Raw values are COCO-Stuff's ``id - 1`` of used categories (the dataset is written in that raw format): the
things take the first twelve thing ids, the stuff classes the ids of their COCO namesakes (grass 124, road 149,
sky-other 157, water-other 178, sand 154, snow 159, wall-brick 171, floor-wood 118).
"""

MINIWORLD_THINGS: tuple[str, ...] = (
    "red disc", "blue square", "yellow triangle", "purple ring", "green star", "orange cross",
    "cyan diamond", "white ellipse", "pink hexagon", "green disc", "blue triangle", "orange ring",
)
MINIWORLD_STUFF: tuple[str, ...] = (
    "grass", "sky", "water", "sand", "brick wall", "wood floor", "snow", "road",
)
MINIWORLD_NAMES: tuple[str, ...] = MINIWORLD_THINGS + MINIWORLD_STUFF
MINIWORLD_RAW: tuple[int, ...] = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12,  # COCO things 1..11, 13 (id 12 does not exist)
    123, 156, 177, 153, 170, 117, 158, 148,
)
# yellow triangle, cyan diamond, green disc (things); grass, road (stuff)
MINIWORLD_UNSEEN: tuple[int, ...] = (2, 6, 9, 12, 19)

# MiniWorld-BG ("with background", COCO-Object's conversion of the same COCO-Stuff-format files): the eight stuff
# classes merge into class 0 "background" (as COCO-Object merges COCO's stuff), the things keep their names. The
# training-free family queries the background with the stuff words (MINIWORLD_BG_WORDS, as the SCLIP family's
# VOC-21 file lists sky, wall, grass, ...) and a probability threshold.
MINIWORLD_BG_NAMES: tuple[str, ...] = ("background", *MINIWORLD_THINGS)
MINIWORLD_BG_RAW: tuple[int, ...] = (255, *MINIWORLD_RAW[:len(MINIWORLD_THINGS)])  # unlabeled -> background
MINIWORLD_BG_STUFF_RAW: tuple[int, ...] = MINIWORLD_RAW[len(MINIWORLD_THINGS):]
