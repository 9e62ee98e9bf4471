"""Synthetic datasets written in the official *raw* formats, so tests and the smoke profile run the real
prepare and loading code.

Scenes are meaningful, not noise: 1-2 regions of "stuff" textures (stripes, checkers, dots, waves, ...) and
0-3 "thing" shapes (a red disc, a blue square, ...), each class one named, visually distinct appearance.
Datasets without stuff classes (VOC-style) get an unlabelled cluttered background instead. The raw quirks of
each format are reproduced: COCO stuffthingmaps store ``id - 1`` and contain unused ids and 255; VOC
SegmentationClassAug has background 0 and 255 object borders, list files and extra unlisted JPEGs;
Pascal-Context and ADE20K use 0 for background / "other".
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.errors import DataError

from .info import DatasetInfo
from .raw_writers import RAW_WRITERS

Texture = Callable[[int, int, np.random.Generator], np.ndarray]


# -- stuff: textures that fill a region ----------------------------------------------------------------------
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:h, 0:w]


def _two_tone(mask: np.ndarray, a: tuple[int, int, int], b: tuple[int, int, int]) -> np.ndarray:
    return np.where(mask[..., None], np.array(a, np.uint8), np.array(b, np.uint8))


def _striped_floor(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, _ = _grid(h, w)
    period = int(rng.integers(5, 8))
    return _two_tone((y + int(rng.integers(period))) % period < period // 2, (139, 90, 43), (222, 184, 135))


def _checkered_wall(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    cell = int(rng.integers(6, 10))
    return _two_tone(((y // cell) + (x // cell)) % 2 == 0, (90, 90, 90), (235, 235, 235))


def _dotted_carpet(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    period = int(rng.integers(6, 9))
    r = (y % period - period / 2) ** 2 + (x % period - period / 2) ** 2
    return _two_tone(r <= (period / 4) ** 2, (250, 220, 120), (120, 20, 40))


def _gradient_sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, _ = _grid(h, w)
    t = (y / max(h - 1, 1))[..., None]
    top, bottom = np.array([70, 130, 230]), np.array([225, 240, 255])
    return (top * (1 - t) + bottom * t).astype(np.uint8)


def _wavy_water(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(x / 3.0 + phase + 2.5 * np.sin(y / 5.0)) > 0
    return _two_tone(wave, (20, 60, 140), (60, 150, 200))


def _speckled_sand(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = np.empty((h, w, 3), np.float32)
    base[:] = (215, 190, 140)
    base += rng.normal(0, 25, size=(h, w, 1))
    return np.clip(base, 0, 255).astype(np.uint8)


def _grid_tiles(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    cell = int(rng.integers(8, 12))
    return _two_tone((y % cell == 0) | (x % cell == 0), (40, 40, 40), (190, 230, 200))


def _clutter(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Unlabelled background: low-frequency grey blotches, deliberately unlike every class."""
    coarse = rng.uniform(80, 170, size=(max(h // 8, 2), max(w // 8, 2), 1)).astype(np.float32)
    img = np.array(Image.fromarray(coarse[..., 0].astype(np.uint8)).resize((w, h), Image.BILINEAR))
    return np.repeat(img[..., None], 3, axis=2)


TEXTURES: dict[str, Texture] = {
    "striped floor": _striped_floor,
    "checkered wall": _checkered_wall,
    "dotted carpet": _dotted_carpet,
    "gradient sky": _gradient_sky,
    "wavy water": _wavy_water,
    "speckled sand": _speckled_sand,
    "grid tiles": _grid_tiles,
}


# -- things: filled shapes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    kind: str
    color: tuple[int, int, int]


SHAPES: dict[str, Shape] = {
    "red disc": Shape("disc", (220, 40, 40)),
    "blue square": Shape("square", (40, 80, 220)),
    "green triangle": Shape("triangle", (40, 180, 60)),
    "yellow star": Shape("star", (240, 210, 40)),
    "purple ring": Shape("ring", (150, 60, 200)),
    "orange cross": Shape("cross", (250, 140, 30)),
    "cyan diamond": Shape("diamond", (40, 210, 210)),
    "white ellipse": Shape("ellipse", (245, 245, 245)),
    "pink hexagon": Shape("hexagon", (240, 120, 180)),
}


@dataclass(frozen=True)
class Appearances:
    """How the classes of a synthetic dataset look: a stuff texture or a thing shape per class name. A dataset
    drawn with looks of its own names them in its catalog entry (`DatasetInfo.appearances`, e.g. MiniWorld);
    the others use `SHARED`, the tables above."""

    textures: Mapping[str, Texture]
    shapes: Mapping[str, Shape]
    # textures drawn as class 0 "background" (a dataset with `background_raw_ids`, in the same order: MiniWorld-BG
    # draws MiniWorld's stuff and labels it as COCO-Object labels COCO's stuff)
    background: tuple[str, ...] = ()


SHARED = Appearances(TEXTURES, SHAPES)


def appearances_of(info: DatasetInfo) -> Appearances:
    """The looks of ``info``'s classes: its own (``info.appearances``, "module:attribute") or the shared tables."""
    if info.appearances is None:
        return SHARED
    module, _, attribute = info.appearances.partition(":")
    looks = getattr(importlib.import_module(module), attribute)
    if not isinstance(looks, Appearances):
        raise DataError(f"dataset {info.name!r}: appearances {info.appearances!r} is not an Appearances.")
    return looks


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if kind == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if kind == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if kind == "triangle":
        return [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]
    if kind == "hexagon":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]]
    if kind == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    if kind == "cross":
        t = r * 0.35
        return [(cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t), (cx + r, cy - t), (cx + r, cy + t),
                (cx + t, cy + t), (cx + t, cy + r), (cx - t, cy + r), (cx - t, cy + t), (cx - r, cy + t),
                (cx - r, cy - t), (cx - t, cy - t)]
    raise ValueError(kind)


def _draw_shape(draws: list[tuple[ImageDraw.ImageDraw, object]], shape: Shape, cx: float, cy: float,
                r: float) -> None:
    """Draw `shape` on each (canvas, fill) pair: the RGB image and the label map share the geometry."""
    for draw, fill in draws:
        if shape.kind == "disc":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif shape.kind == "ellipse":
            draw.ellipse([cx - r, cy - r * 0.55, cx + r, cy + r * 0.55], fill=fill)
        elif shape.kind == "ring":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(shape.kind, cx, cy, r), fill=fill)


def _punch_ring_hole(image: Image.Image, label: Image.Image, below_img: np.ndarray, below_lab: np.ndarray,
                     cx: float, cy: float, r: float) -> None:
    """A ring is a disc whose centre shows what was underneath (image and label alike)."""
    hole = Image.new("L", image.size, 0)
    ImageDraw.Draw(hole).ellipse([cx - r * 0.5, cy - r * 0.5, cx + r * 0.5, cy + r * 0.5], fill=1)
    m = np.array(hole, bool)
    img, lab = np.array(image), np.array(label)
    img[m], lab[m] = below_img[m], below_lab[m]
    image.paste(Image.fromarray(img))
    label.paste(Image.fromarray(lab))


# -- scenes ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneSpec:
    """What a scene may contain, as raw label values (the format's own numbering)."""

    stuff: tuple[tuple[str, int], ...]  # (texture name, raw value)
    things: tuple[tuple[str, int], ...]  # (shape name, raw value)
    background_raw: int | None  # raw value of the unlabelled background (None: stuff covers the image)
    border_raw: int | None = None  # VOC: object outlines drawn with this value (255)
    unused_raw: int | None = None  # COCO: a raw id the dataset does not use (must become ignore)
    unlabeled_raw: int | None = None  # a patch of "unlabeled" (COCO 255, ADE/Context 0)
    looks: Appearances = SHARED  # how each named class is drawn


def render_scene(spec: SceneSpec, height: int, width: int, rng: np.random.Generator,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (RGB uint8 HxWx3, raw label uint8 HxW)."""
    h, w = height, width
    label = np.zeros((h, w), np.uint8)
    if spec.stuff:
        # 1-2 texture regions split by a random line
        names = [spec.stuff[i] for i in rng.choice(len(spec.stuff), size=min(2, len(spec.stuff)), replace=False)]
        if rng.random() < 0.3:
            names = names[:1]
        first_name, first_raw = names[0]
        image = spec.looks.textures[first_name](h, w, rng)
        label[:] = first_raw
        if len(names) == 2:
            y, x = np.mgrid[0:h, 0:w]
            a = rng.uniform(0, math.pi)
            off = rng.uniform(-0.25, 0.25) * min(h, w)
            side = (x - w / 2) * math.cos(a) + (y - h / 2) * math.sin(a) > off
            second_name, second_raw = names[1]
            image = np.where(side[..., None], spec.looks.textures[second_name](h, w, rng), image)
            label[side] = second_raw
    else:
        image = _clutter(h, w, rng)
        label[:] = spec.background_raw if spec.background_raw is not None else 0
    if spec.unlabeled_raw is not None and rng.random() < 0.4:
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        label[y0:y0 + h // 5, x0:x0 + w // 5] = spec.unlabeled_raw

    img_pil, lab_pil = Image.fromarray(np.ascontiguousarray(image)), Image.fromarray(label)
    n_things = int(rng.integers(0, 4)) if spec.stuff else int(rng.integers(1, 4))
    objects: list[tuple[str, int]] = []
    if spec.things and n_things:
        objects = [spec.things[i] for i in rng.choice(len(spec.things), size=n_things)]
    if spec.unused_raw is not None and rng.random() < 0.3:
        objects.append(("__unused__", spec.unused_raw))
    for name, raw in objects:
        r = rng.uniform(0.12, 0.28) * min(h, w)
        cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
        shape = spec.looks.shapes.get(name, Shape("square", (128, 128, 40)))  # the unused id: an olive box
        colour = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in shape.color)
        below_img, below_lab = np.array(img_pil), np.array(lab_pil)
        _draw_shape([(ImageDraw.Draw(img_pil), colour), (ImageDraw.Draw(lab_pil), raw)], shape, cx, cy, r)
        if shape.kind == "ring":
            _punch_ring_hole(img_pil, lab_pil, below_img, below_lab, cx, cy, r)
        if spec.border_raw is not None:
            _outline(lab_pil, shape, cx, cy, r, spec.border_raw)
    return np.array(img_pil), np.array(lab_pil)


def _outline(label: Image.Image, shape: Shape, cx: float, cy: float, r: float, value: int) -> None:
    draw = ImageDraw.Draw(label)
    if shape.kind in ("disc", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=value, width=1)
    elif shape.kind == "ellipse":
        draw.ellipse([cx - r, cy - r * 0.55, cx + r, cy + r * 0.55], outline=value, width=1)
    else:
        pts = _polygon(shape.kind, cx, cy, r)
        draw.line([*pts, pts[0]], fill=value, width=1)


# -- raw writers -----------------------------------------------------------------------------------------
RAW_FORMATS: tuple[str, ...] = ("coco_stuff", "voc_aug", "pcontext59", "ade20k")
_DEFAULT_DATASET = {"coco_stuff": "synthetic_coco", "voc_aug": "synthetic_voc",
                    "pcontext59": "synthetic_pc", "ade20k": "synthetic_ade"}
COCO_UNUSED_RAW = 11  # COCO category id 12 does not exist in COCO-Stuff's 171 classes


def scene_spec(info: DatasetInfo) -> SceneSpec:
    """The scene vocabulary of a synthetic dataset, in its raw format's numbering, drawn with its looks."""
    looks = appearances_of(info)
    if len(looks.background) not in (0, len(info.background_raw_ids)):
        raise DataError(f"synthetic dataset {info.name!r}: {len(looks.background)} background textures for "
                        f"{len(info.background_raw_ids)} background raw ids.")
    background = tuple(zip(looks.background, info.background_raw_ids))
    stuff = tuple((n, r) for n, r in zip(info.class_names, info.raw_ids) if n in looks.textures) + background
    things = tuple((n, r) for n, r in zip(info.class_names, info.raw_ids) if n in looks.shapes)
    drawn = set(looks.textures) | set(looks.shapes) | ({"background"} if background else set())
    unknown = [n for n in info.class_names if n not in drawn]
    if unknown:
        raise DataError(f"synthetic dataset {info.name!r}: no appearance defined for classes {unknown}.")
    fmt = info.raw_format
    if fmt == "coco_stuff":
        return SceneSpec(stuff, things, None, unused_raw=COCO_UNUSED_RAW, unlabeled_raw=255, looks=looks)
    if fmt == "voc_aug":
        return SceneSpec((), things, background_raw=0, border_raw=255, looks=looks)
    # pcontext59 / ade20k: 0 = background / "other", present as unlabelled patches
    return SceneSpec(stuff, things, background_raw=0, unlabeled_raw=0, looks=looks)


def write_synthetic_raw(format: str, root: str | Path, n_train: int = 8, n_val: int = 4, size: int = 64,
                        seed: int = 0, dataset: str | None = None) -> Path:
    """Write a synthetic dataset in the official raw layout of `format` under `root`; returns `root`.

    Layouts (what ``python -m harness prepare NAME --raw ROOT`` reads):
    - ``coco_stuff``: ``{train2017,val2017}/*.jpg`` and ``stuffthingmaps/{train2017,val2017}/*.png``
    - ``voc_aug``: ``JPEGImages/*.jpg``, ``SegmentationClassAug/*.png``, ``train.txt``, ``val.txt``
    - ``pcontext59``: ``JPEGImages/*.jpg``, ``SegmentationClassContext/*.png``,
      ``ImageSets/SegmentationContext/{train,val}.txt``
    - ``ade20k``: ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png``
    Image heights are `size`; widths vary in [size, 1.5 * size] so resizing code sees non-square inputs.
    """
    from harness.registries import DATASETS

    if format not in RAW_FORMATS:
        raise DataError(f"unknown raw format {format!r}; synthetic data exists for {', '.join(RAW_FORMATS)}.")
    info: DatasetInfo = DATASETS.get(dataset or _DEFAULT_DATASET[format])
    if info.raw_format != format:
        raise DataError(f"dataset {info.name!r} is in the {info.raw_format!r} raw format, not {format!r}.")
    spec = scene_spec(info)
    root = Path(root)
    rng = np.random.default_rng(seed)
    writer = RAW_WRITERS[format](root)
    counter = 0
    for split, n in (("train", n_train), ("val", n_val)):
        for _ in range(n):
            counter += 1
            width = size + int(rng.integers(0, size // 2 + 1))
            image, label = render_scene(spec, size, width, rng)
            if info.layout.split(split) is not None:  # drawn either way: later scenes stay those of the seed
                writer.add(split, counter, image, label)
    if format == "voc_aug":  # JPEGImages holds more images than the lists name, as the real one does
        counter += 1
        image, _ = render_scene(spec, size, size, rng)
        writer.add_unlisted(counter, image)
    writer.finish()
    return root


def ensure_synthetic(name: str, root: str | Path | None = None, *, n_train: int = 48, n_val: int = 16,
                     size: int = 64, seed: int = 0) -> Path:
    """Make sure the synthetic dataset `name` is prepared under the data root; returns the root.

    A prepared copy that passes `verify_prepared` is kept as it is (whatever its size); otherwise a raw
    download is written to ``<root>/_raw/<name>`` and converted by the real prepare code. Runs that start
    together on one data root take turns (a lock file beside the data): the first writes, the others find it done.
    """
    import shutil

    from harness.registries import DATASETS

    from .io import file_lock
    from .layout import data_root, verify_prepared
    from .prepare import prepare_dataset
    from .synthetic_params import reconcile_params

    info: DatasetInfo = DATASETS.get(name)
    if not info.synthetic:
        raise DataError(f"{name!r} is not a synthetic dataset; prepare it with `{info.prepare_command()}`.")
    root = data_root(root)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{name}.lock"):
        reconcile_params(info, root, {"n_train": n_train, "n_val": n_val, "size": size, "seed": seed})
        try:
            verify_prepared(info, root)
            return root
        except DataError:
            pass
        raw = root / "_raw" / name
        shutil.rmtree(raw, ignore_errors=True)
        write_synthetic_raw(info.raw_format or "", raw, n_train=n_train, n_val=n_val, size=size, seed=seed,
                            dataset=name)
        prepare_dataset(info, raw, root, workers=1, progress=False, log=lambda _: None)
    return root
