"""The speed task's images: the first N prepared COCO-Stuff val images, else deterministic synthetic ones."""

from __future__ import annotations

from typing import Any

import torch

from ..data import open_dataset
from ..errors import DataError


def load_images(opts: dict[str, Any], data_root) -> tuple[list, str]:
    """The first N prepared COCO-Stuff val images, or deterministic synthetic images of COCO's sizes."""
    try:
        dataset = open_dataset("coco_stuff_171", "val", data_root)
        n = min(opts["images"], len(dataset))
        return [dataset[i]["image"] for i in range(n)], f"coco_stuff_171 val, first {n} images"
    except DataError:
        pass
    g = torch.Generator().manual_seed(opts["seed"])
    images = []
    for i in range(opts["images"]):
        h, w = opts["image_sizes"][i % len(opts["image_sizes"])]
        # Smooth random colour fields (not white noise): proposals then see regions, as on photos.
        low = torch.rand(3, max(2, h // 64), max(2, w // 64), generator=g) * 255
        images.append(torch.nn.functional.interpolate(low[None], size=(h, w), mode="bilinear",
                                                      align_corners=False)[0].round().to(torch.uint8))
    sizes = ", ".join(f"{im.shape[1]}x{im.shape[2]}" for im in images)
    return images, f"synthetic ({len(images)} images of COCO's typical sizes: {sizes}; COCO-Stuff not prepared)"
