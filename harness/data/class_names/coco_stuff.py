"""COCO-Stuff-164k: the 171 used categories (METHOD_SPEC §10.1).

Source: [S]/[D] ``mask_former/data/datasets/register_coco_stuff.py`` L9-181 (``COCO_CATEGORIES``): 80 things
with COCO ids 1..90 (with gaps) and 91 stuff classes with ids 92..182. The raw ``stuffthingmaps`` PNGs store
``id - 1``; the contiguous train id is the index in this list.
"""

# (COCO category id, name, isthing), in the official order (= train id order).
COCO_STUFF_CATEGORIES: tuple[tuple[int, str, bool], ...] = (
    (1, "person", True), (2, "bicycle", True), (3, "car", True), (4, "motorcycle", True),
    (5, "airplane", True), (6, "bus", True), (7, "train", True), (8, "truck", True), (9, "boat", True),
    (10, "traffic light", True), (11, "fire hydrant", True), (13, "stop sign", True),
    (14, "parking meter", True), (15, "bench", True), (16, "bird", True), (17, "cat", True), (18, "dog", True),
    (19, "horse", True), (20, "sheep", True), (21, "cow", True), (22, "elephant", True), (23, "bear", True),
    (24, "zebra", True), (25, "giraffe", True), (27, "backpack", True), (28, "umbrella", True),
    (31, "handbag", True), (32, "tie", True), (33, "suitcase", True), (34, "frisbee", True), (35, "skis", True),
    (36, "snowboard", True), (37, "sports ball", True), (38, "kite", True), (39, "baseball bat", True),
    (40, "baseball glove", True), (41, "skateboard", True), (42, "surfboard", True),
    (43, "tennis racket", True), (44, "bottle", True), (46, "wine glass", True), (47, "cup", True),
    (48, "fork", True), (49, "knife", True), (50, "spoon", True), (51, "bowl", True), (52, "banana", True),
    (53, "apple", True), (54, "sandwich", True), (55, "orange", True), (56, "broccoli", True),
    (57, "carrot", True), (58, "hot dog", True), (59, "pizza", True), (60, "donut", True), (61, "cake", True),
    (62, "chair", True), (63, "couch", True), (64, "potted plant", True), (65, "bed", True),
    (67, "dining table", True), (70, "toilet", True), (72, "tv", True), (73, "laptop", True),
    (74, "mouse", True), (75, "remote", True), (76, "keyboard", True), (77, "cell phone", True),
    (78, "microwave", True), (79, "oven", True), (80, "toaster", True), (81, "sink", True),
    (82, "refrigerator", True), (84, "book", True), (85, "clock", True), (86, "vase", True),
    (87, "scissors", True), (88, "teddy bear", True), (89, "hair drier", True), (90, "toothbrush", True),
    (92, "banner", False), (93, "blanket", False), (94, "branch", False), (95, "bridge", False),
    (96, "building-other", False), (97, "bush", False), (98, "cabinet", False), (99, "cage", False),
    (100, "cardboard", False), (101, "carpet", False), (102, "ceiling-other", False),
    (103, "ceiling-tile", False), (104, "cloth", False), (105, "clothes", False), (106, "clouds", False),
    (107, "counter", False), (108, "cupboard", False), (109, "curtain", False), (110, "desk-stuff", False),
    (111, "dirt", False), (112, "door-stuff", False), (113, "fence", False), (114, "floor-marble", False),
    (115, "floor-other", False), (116, "floor-stone", False), (117, "floor-tile", False),
    (118, "floor-wood", False), (119, "flower", False), (120, "fog", False), (121, "food-other", False),
    (122, "fruit", False), (123, "furniture-other", False), (124, "grass", False), (125, "gravel", False),
    (126, "ground-other", False), (127, "hill", False), (128, "house", False), (129, "leaves", False),
    (130, "light", False), (131, "mat", False), (132, "metal", False), (133, "mirror-stuff", False),
    (134, "moss", False), (135, "mountain", False), (136, "mud", False), (137, "napkin", False),
    (138, "net", False), (139, "paper", False), (140, "pavement", False), (141, "pillow", False),
    (142, "plant-other", False), (143, "plastic", False), (144, "platform", False),
    (145, "playingfield", False), (146, "railing", False), (147, "railroad", False), (148, "river", False),
    (149, "road", False), (150, "rock", False), (151, "roof", False), (152, "rug", False), (153, "salad", False),
    (154, "sand", False), (155, "sea", False), (156, "shelf", False), (157, "sky-other", False),
    (158, "skyscraper", False), (159, "snow", False), (160, "solid-other", False), (161, "stairs", False),
    (162, "stone", False), (163, "straw", False), (164, "structural-other", False), (165, "table", False),
    (166, "tent", False), (167, "textile-other", False), (168, "towel", False), (169, "tree", False),
    (170, "vegetable", False), (171, "wall-brick", False), (172, "wall-concrete", False),
    (173, "wall-other", False), (174, "wall-panel", False), (175, "wall-stone", False),
    (176, "wall-tile", False), (177, "wall-wood", False), (178, "water-other", False),
    (179, "waterdrops", False), (180, "window-blind", False), (181, "window-other", False),
    (182, "wood", False),
)

# Raw stuffthingmaps values (COCO id - 1) of the 15 unseen classes: register_coco_stuff.py L183-196 and the
# prepare script's ``novel_clsID`` (L189).
COCO_STUFF_UNSEEN_RAW: tuple[int, ...] = (20, 24, 32, 33, 40, 56, 86, 99, 105, 123, 144, 147, 148, 168, 171)
