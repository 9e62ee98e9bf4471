"""Writers of synthetic scenes in the official raw layouts (what `harness.data.prepare` reads): COCO-Stuff,
VOC-Aug, Pascal-Context and ADE20K file names, folders and list files. Used by `harness.data.synthetic`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def _save_png(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label).save(path)


class CocoWriter:
    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, split: str, idx: int, image: np.ndarray, label: np.ndarray) -> None:
        folder = {"train": "train2017", "val": "val2017"}[split]
        stem = f"{idx:012d}"
        _save_jpeg(self.root / folder / f"{stem}.jpg", image)
        _save_png(self.root / "stuffthingmaps" / folder / f"{stem}.png", label)

    def finish(self) -> None:
        pass


class ListWriter:
    """VOC-style: one image folder, one label folder and per-split list files."""

    image_dir, label_dir, list_dir = "JPEGImages", "SegmentationClassAug", "."

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lists: dict[str, list[str]] = {"train": [], "val": []}

    def stem(self, idx: int) -> str:
        return f"2008_{idx:06d}"

    def add(self, split: str, idx: int, image: np.ndarray, label: np.ndarray) -> None:
        stem = self.stem(idx)
        _save_jpeg(self.root / self.image_dir / f"{stem}.jpg", image)
        _save_png(self.root / self.label_dir / f"{stem}.png", label)
        self.lists[split].append(stem)

    def add_unlisted(self, idx: int, image: np.ndarray) -> None:
        _save_jpeg(self.root / self.image_dir / f"{self.stem(idx)}.jpg", image)

    def finish(self) -> None:
        for split, stems in self.lists.items():
            path = self.root / self.list_dir / f"{split}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{s}\n" for s in stems))


class VocWriter(ListWriter):
    pass


class ContextWriter(ListWriter):
    label_dir, list_dir = "SegmentationClassContext", "ImageSets/SegmentationContext"

    def stem(self, idx: int) -> str:
        return f"2010_{idx:06d}"


class AdeWriter:
    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, split: str, idx: int, image: np.ndarray, label: np.ndarray) -> None:
        folder, tag = {"train": ("training", "train"), "val": ("validation", "val")}[split]
        stem = f"ADE_{tag}_{idx:08d}"
        _save_jpeg(self.root / "images" / folder / f"{stem}.jpg", image)
        _save_png(self.root / "annotations" / folder / f"{stem}.png", label)

    def finish(self) -> None:
        pass


RAW_WRITERS: dict[str, type] = {"coco_stuff": CocoWriter, "voc_aug": VocWriter, "pcontext59": ContextWriter,
                                "ade20k": AdeWriter}
