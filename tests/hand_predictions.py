"""A hand-made synthetic_coco split and detectron2 predictions file for the sem_seg_predictions.json tests."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

from harness.data import get_info

INFO = get_info("synthetic_coco")
# synthetic_coco's COCO ids (raw value + 1): things 1, 3, 7, 16, 20, 25; stuff 92, 101, 118, 157, 178
RED_DISC, STRIPED_FLOOR, GREEN_TRIANGLE, WAVY_WATER = 0, 6, 2, 10  # train ids; 2 and 10 are unseen


def write_split(root, labels: dict[str, list[list[int]]]):
    for stem, rows in labels.items():
        label = np.array(rows, dtype=np.uint8)
        image_dir, label_dir = root / INFO.layout.val.image_dir, root / INFO.layout.val.label_dir
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((*label.shape, 3), np.uint8)).save(image_dir / f"{stem}.jpg")
        Image.fromarray(label).save(label_dir / f"{stem}.png")


def rle_text(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask[:, :, None].astype(np.uint8)))[0]
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


HAND_GT = {
    "a": [[RED_DISC, RED_DISC, STRIPED_FLOOR],
          [RED_DISC, 255, STRIPED_FLOOR]],
    "b": [[GREEN_TRIANGLE, GREEN_TRIANGLE],
          [WAVY_WATER, WAVY_WATER]],
}


def hand_file(path):
    """Image a predicted [[disc, floor, floor], [disc, disc, floor]] in uncompressed RLE counts written by hand
    (column-major runs, starting with a run of zeros); image b predicted [[triangle, water], [water, water]] in
    pycocotools' compressed strings. file_name is an image path, as detectron2 writes it."""
    b_pred = np.array([[GREEN_TRIANGLE, WAVY_WATER], [WAVY_WATER, WAVY_WATER]])
    entries = [
        {"file_name": "datasets/synthetic_coco/val2017/a.jpg", "category_id": 1,
         "segmentation": {"size": [2, 3], "counts": [0, 2, 1, 1, 2]}},  # column-major 1,1, 0,1, 0,0
        {"file_name": "datasets/synthetic_coco/val2017/a.jpg", "category_id": 92,
         "segmentation": {"size": [2, 3], "counts": [2, 1, 1, 2]}},  # 0,0, 1,0, 1,1
        {"file_name": "datasets/synthetic_coco/val2017/b.jpg", "category_id": 7,
         "segmentation": rle_text(b_pred == GREEN_TRIANGLE)},
        {"file_name": "datasets/synthetic_coco/val2017/b.jpg", "category_id": 178,
         "segmentation": rle_text(b_pred == WAVY_WATER)},
    ]
    path.write_text(json.dumps(entries))
    return entries
