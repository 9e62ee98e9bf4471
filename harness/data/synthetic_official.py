"""Synthetic raw downloads in the official layouts of the training-free family's benchmarks (VOC-21, PC-60,
COCO-Object, Cityscapes), labelled with the real datasets' raw values, so tests run the real `prepare` on
exactly the files, folders, list files and value conventions of the official archives.

Scenes are a base region plus 1-3 rectangles, each raw value painted in its own colour. What each format
must exercise is drawn on purpose: VOC palette PNGs with background 0 and 255 borders, Pascal-Context's
background 0, COCO's stuff values and 255 unlabeled (both background for COCO-Object), and Cityscapes'
void labelIds (ignored) beside the 19 evaluated ones, in per-city folders with ``_leftImg8bit`` /
``_gtFine_labelIds`` names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import DataError

from .class_names.training_free import CITYSCAPES_RAW, COCO_STUFF_RAW, COCO_THINGS

CITYSCAPES_VAL_CITIES: tuple[str, ...] = ("frankfurt", "lindau", "munster")
CITYSCAPES_VOID_IDS: tuple[int, ...] = (0, 1, 4, 9, 14, 29)  # unlabeled, ego vehicle, static, parking, ...


def voc_palette() -> list[int]:
    """The 256-colour palette of VOC's SegmentationClass PNGs (the devkit's ``labelcolormap``: bits of the
    index spread over R, G, B from the high bit down); index 255 is (224, 224, 192)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _colour(value: int) -> np.ndarray:
    rng = np.random.default_rng(value + 1000)
    return rng.integers(30, 226, size=3).astype(np.uint8)


def _scene(h: int, w: int, rng: np.random.Generator, base: list[int], objects: list[int],
           border: int | None = None, patch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    label = np.full((h, w), base[int(rng.integers(len(base)))], np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        value = objects[int(rng.integers(len(objects)))]
        y0, x0 = int(rng.integers(0, h - h // 4)), int(rng.integers(0, w - w // 4))
        y1, x1 = y0 + int(rng.integers(h // 6, h // 2)), x0 + int(rng.integers(w // 6, w // 2))
        label[y0:y1, x0:x1] = value
        if border is not None:  # VOC outlines objects with 255 ("void")
            label[y0:y1, [x0, min(x1, w) - 1]] = border
            label[[y0, min(y1, h) - 1], x0:x1] = border
    if patch is not None:
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        label[y0:y0 + h // 5, x0:x0 + w // 5] = patch
    image = np.stack([_colour(int(v)) for v in range(256)])[label]
    noise = rng.integers(-12, 13, size=image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8), label


def _save(path: Path, array: np.ndarray) -> None:
    _mkdir(path)
    Image.fromarray(array).save(path)


def _palettised(label: np.ndarray, palette: list[int]) -> Image.Image:
    """A mode "P" image whose pixel values are the label indices, as VOC's SegmentationClass PNGs are."""
    im = Image.fromarray(label.astype(np.uint8)).convert("P")  # "L" -> "P" keeps the indices
    im.putpalette(palette)
    return im


def _write_list(path: Path, stems: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s}\n" for s in stems))


def write_official_raw(dataset: str, root: str | Path, n_val: int = 4, size: int = 48, seed: int = 0) -> Path:
    """Write `n_val` validation scenes of `dataset` (voc_21, pc_60, coco_object, cityscapes) in its official
    raw layout under `root` (what ``python -m harness prepare DATASET --raw ROOT`` reads); returns `root`.
    Heights are `size`, widths vary in [size, 1.5 * size]."""
    if dataset not in OFFICIAL_RAW_WRITERS:
        raise DataError(f"no synthetic official download for {dataset!r}; there is one for "
                        f"{', '.join(OFFICIAL_RAW_WRITERS)}.")
    root, rng = Path(root), np.random.default_rng(seed)
    scenes = []
    for i in range(n_val):
        width = size + int(rng.integers(0, size // 2 + 1))
        scenes.append((i + 1, size, width))
    OFFICIAL_RAW_WRITERS[dataset](root, scenes, rng)
    return root


def _voc2012(root: Path, scenes: list[tuple[int, int, int]], rng: np.random.Generator) -> None:
    stems = []
    for idx, h, w in scenes:
        image, label = _scene(h, w, rng, base=[0], objects=list(range(1, 21)), border=255)
        stem = f"2007_{idx:06d}"
        _save(root / "JPEGImages" / f"{stem}.jpg", image)
        _palettised(label, voc_palette()).save(_mkdir(root / "SegmentationClass" / f"{stem}.png"))
        stems.append(stem)
    # the devkit's JPEGImages also holds the detection-only images, and train.txt lists other images
    _save(root / "JPEGImages" / "2007_999999.jpg", _scene(16, 16, rng, [0], [1])[0])
    _write_list(root / "ImageSets/Segmentation/val.txt", stems)
    _write_list(root / "ImageSets/Segmentation/train.txt", ["2007_999999"])


def _pcontext(root: Path, scenes: list[tuple[int, int, int]], rng: np.random.Generator) -> None:
    stems = []
    for idx, h, w in scenes:
        image, label = _scene(h, w, rng, base=[0, 0, *range(1, 60)], objects=list(range(60)))
        stem = f"2008_{idx:06d}"
        _save(root / "JPEGImages" / f"{stem}.jpg", image)
        _save(root / "SegmentationClassContext" / f"{stem}.png", label)
        stems.append(stem)
    _write_list(root / "ImageSets/SegmentationContext/val.txt", stems)
    _write_list(root / "ImageSets/SegmentationContext/train.txt", [])


def _coco_stuff(root: Path, scenes: list[tuple[int, int, int]], rng: np.random.Generator) -> None:
    things = [raw for raw, _ in COCO_THINGS]
    for idx, h, w in scenes:
        image, label = _scene(h, w, rng, base=list(COCO_STUFF_RAW), objects=things + list(COCO_STUFF_RAW),
                              patch=255)
        stem = f"{idx:012d}"
        _save(root / "val2017" / f"{stem}.jpg", image)
        _save(root / "stuffthingmaps" / "val2017" / f"{stem}.png", label)


def _cityscapes(root: Path, scenes: list[tuple[int, int, int]], rng: np.random.Generator) -> None:
    for idx, h, w in scenes:
        image, label = _scene(h, w, rng, base=[7, 11, 23, 0], objects=list(CITYSCAPES_RAW) + [9, 29],
                              patch=int(rng.choice(CITYSCAPES_VOID_IDS)))
        city = CITYSCAPES_VAL_CITIES[idx % len(CITYSCAPES_VAL_CITIES)]
        stem = f"{city}_{idx:06d}_{19 * idx:06d}"
        _save(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", image)
        _save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", label)


def _mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


OFFICIAL_RAW_WRITERS = {"voc_21": _voc2012, "pc_60": _pcontext, "coco_object": _coco_stuff,
                        "cityscapes": _cityscapes}
