"""MiniWorld's appearance: eight stuff textures named like real stuff, twelve coloured thing shapes, scenes
and the captions a tiny CLIP is pretrained on.

Scenes are drawn by the shared generator (`harness.data.synthetic.render_scene`): 1-2 stuff regions split by
a random line and 0-3 things of radius 12-28 % of the image side. This module only defines MiniWorld's
appearances (`APPEARANCES`), passed to the generator as data (the catalog entry names them; nothing is patched
into the generator's shared tables), so the segmentation dataset is written in COCO-Stuff's raw format by the same
writer and prepared by the same converter as every synthetic dataset.

Captions name what is visible, as web alt-text would: "a photo of a red disc and a blue square on grass."
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from harness.errors import DataError

from ..class_names.miniworld import MINIWORLD_NAMES, MINIWORLD_STUFF, MINIWORLD_THINGS
from ..synthetic import Appearances, SceneSpec, Shape, Texture, render_scene

# A class counts as visible (captioned) from a quarter of a 8x8 patch on: a thing hidden behind another thing
# but for a sliver is not named, as a photographer would not name it either.
MIN_VISIBLE_PIXELS = 16


def _noise(h: int, w: int, rng: np.random.Generator, cells_h: int, cells_w: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid resized bilinearly to (h, w)."""
    coarse = rng.uniform(0, 255, size=(max(cells_h, 2), max(cells_w, 2))).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), np.float32) / 255.0


def _finish(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def _grass(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    blades = _noise(h, w, rng, h // 8, w)  # coarse in y, fine in x: vertical streaks
    img = np.empty((h, w, 3), np.float32)
    img[:] = (60, 140, 45)
    img += (blades[..., None] - 0.5) * np.array([40, 90, 30], np.float32)
    img += rng.normal(0, 8, size=(h, w, 1))
    return _finish(img)


def _sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y = np.mgrid[0:h, 0:w][0]
    t = (y / max(h - 1, 1))[..., None]
    img = np.array([55, 115, 215], np.float32) * (1 - t) + np.array([165, 205, 250], np.float32) * t
    clouds = _noise(h, w, rng, h // 16 + 2, w // 16 + 2)
    cover = np.clip((clouds - rng.uniform(0.55, 0.8)) * 5, 0, 1)[..., None]
    return _finish(img * (1 - cover) + 250 * cover)


def _water(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 2 * math.pi)
    ripple = 0.5 + 0.5 * np.sin(x / 2.5 + phase + 2.0 * np.sin(y / 4.0 + phase))
    deep, light = np.array([20, 60, 140], np.float32), np.array([70, 150, 205], np.float32)
    return _finish(deep + (light - deep) * ripple[..., None])


def _sand(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    dunes = 0.5 + 0.5 * np.sin((x * 0.3 + y) / 3.5 + rng.uniform(0, 2 * math.pi))
    img = np.array([215, 188, 135], np.float32) + (dunes[..., None] - 0.5) * 20
    img += rng.normal(0, 18, size=(h, w, 1))
    return _finish(img)


def _brick_wall(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    course = int(rng.integers(5, 8))
    length = 2 * course + int(rng.integers(0, 4))
    row = (y + int(rng.integers(course))) // course
    shifted = x + (row % 2) * (length // 2)
    brick = row * 1000 + shifted // length
    tone = rng.normal(0, 14, size=int(brick.max()) + 1)[brick]
    img = np.array([165, 65, 45], np.float32) + tone[..., None] * np.array([1.0, 0.5, 0.4], np.float32)
    mortar = ((y + int(rng.integers(course))) % course == 0) | (shifted % length == 0)
    img[mortar] = (205, 200, 190)
    return _finish(img)


def _wood_floor(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    plank_h = int(rng.integers(8, 13))
    plank = (y + int(rng.integers(plank_h))) // plank_h
    tone = rng.normal(0, 18, size=int(plank.max()) + 1)[plank]
    phase = rng.uniform(0, 2 * math.pi, size=int(plank.max()) + 1)[plank]
    grain = np.sin(x / 1.7 + phase + 1.5 * np.sin(x / 9.0 + phase))
    img = np.array([150, 100, 55], np.float32) + (tone + 10 * grain)[..., None] * np.array([1.0, 0.8, 0.6])
    img[(y + int(rng.integers(plank_h))) % plank_h == 0] = (80, 50, 25)
    return _finish(img)


def _snow(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    shade = _noise(h, w, rng, h // 12 + 2, w // 12 + 2)
    img = np.array([236, 241, 250], np.float32) - (shade[..., None] - 0.5) * np.array([30, 24, 10], np.float32)
    img += rng.normal(0, 5, size=(h, w, 1))
    return _finish(img)


def _road(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    img[:] = (78, 78, 84)
    img += rng.normal(0, 12, size=(h, w, 1))
    if rng.random() < 0.7:  # a dashed lane marking
        y0, thick = int(rng.integers(h // 4, 3 * h // 4)), max(2, h // 24)
        dash = (np.arange(w) + int(rng.integers(16))) % 16 < 9
        colour = (235, 235, 235) if rng.random() < 0.5 else (235, 200, 40)
        img[y0:y0 + thick, dash] = colour
    return _finish(img)


TEXTURES: dict[str, Texture] = {
    "grass": _grass, "sky": _sky, "water": _water, "sand": _sand, "brick wall": _brick_wall,
    "wood floor": _wood_floor, "snow": _snow, "road": _road,
}
_RED, _BLUE, _YELLOW, _GREEN = (220, 40, 40), (40, 80, 220), (240, 210, 40), (40, 180, 60)
_ORANGE = (250, 140, 30)
SHAPES: dict[str, Shape] = {
    "red disc": Shape("disc", _RED),
    "blue square": Shape("square", _BLUE),
    "yellow triangle": Shape("triangle", _YELLOW),
    "purple ring": Shape("ring", (150, 60, 200)),
    "green star": Shape("star", _GREEN),
    "orange cross": Shape("cross", _ORANGE),
    "cyan diamond": Shape("diamond", (40, 210, 210)),
    "white ellipse": Shape("ellipse", (245, 245, 245)),
    "pink hexagon": Shape("hexagon", (240, 120, 180)),
    "green disc": Shape("disc", _GREEN),
    "blue triangle": Shape("triangle", _BLUE),
    "orange ring": Shape("ring", _ORANGE),
}
assert tuple(SHAPES) == MINIWORLD_THINGS and tuple(TEXTURES) == MINIWORLD_STUFF


# Passed as data: the dataset's catalog entry names it (`DatasetInfo.appearances`), pretraining scenes carry it.
APPEARANCES = Appearances(TEXTURES, SHAPES)
# MiniWorld-BG: the same looks, its eight stuff classes drawn as the background (class 0)
APPEARANCES_BG = Appearances(TEXTURES, SHAPES, background=MINIWORLD_STUFF)

# Pretraining scenes: labels are train ids (0..19), no format quirks (no unlabelled patches, no unused ids).
PRETRAIN_SPEC = SceneSpec(
    stuff=tuple((n, MINIWORLD_NAMES.index(n)) for n in MINIWORLD_STUFF),
    things=tuple((n, MINIWORLD_NAMES.index(n)) for n in MINIWORLD_THINGS),
    background_raw=None,
    looks=APPEARANCES,
)

# How a caption places the things on each stuff ("a red disc on grass", "... against the sky").
STUFF_PHRASES: dict[str, str] = {
    "grass": "on grass", "sky": "against the sky", "water": "on water", "sand": "on sand",
    "brick wall": "in front of a brick wall", "wood floor": "on a wood floor", "snow": "on snow",
    "road": "on a road",
}
STUFF_NOUNS: dict[str, str] = {
    "grass": "grass", "sky": "the sky", "water": "water", "sand": "sand", "brick wall": "a brick wall",
    "wood floor": "a wood floor", "snow": "snow", "road": "a road",
}


def _article(name: str) -> str:
    return ("an " if name[0] in "aeiou" else "a ") + name


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption(things: Sequence[str], stuff: Sequence[str]) -> str:
    """The caption of a scene showing `things` on `stuff` (in the order given; callers shuffle).

    >>> caption(["red disc", "orange ring"], ["grass"])
    'a photo of a red disc and an orange ring on grass.'
    >>> caption([], ["sky", "water"])
    'a photo of the sky and water.'
    """
    if not stuff and not things:
        raise DataError("a MiniWorld caption needs at least one visible class.")
    if not things:
        return f"a photo of {_join([STUFF_NOUNS[s] for s in stuff])}."
    where = f" {_join([STUFF_PHRASES[s] for s in stuff])}" if stuff else ""
    return f"a photo of {_join([_article(t) for t in things])}{where}."


def visible_classes(label: np.ndarray, min_pixels: int = MIN_VISIBLE_PIXELS) -> list[int]:
    """Train ids (0..19) covering at least `min_pixels` pixels of a train-id label map."""
    counts = np.bincount(label.ravel(), minlength=256)[: len(MINIWORLD_NAMES)]
    return [int(c) for c in np.flatnonzero(counts >= min_pixels)]


def sample_scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray, str]:
    """One square pretraining scene: (RGB uint8 HxWx3, train-id label HxW, caption of its visible classes)."""
    image, label = render_scene(PRETRAIN_SPEC, size, size, rng)
    present = [MINIWORLD_NAMES[i] for i in visible_classes(label)]
    things = [n for n in present if n in SHAPES]
    stuff = [n for n in present if n in TEXTURES]
    rng.shuffle(things)
    rng.shuffle(stuff)
    return image, label, caption(things, stuff)


def caption_vocabulary() -> list[str]:
    """Every word-piece source a caption can contain: each class in each position, articles and joints."""
    texts = [caption([t], [s]) for t in MINIWORLD_THINGS for s in MINIWORLD_STUFF]
    texts += [caption([], [s, s2]) for s in MINIWORLD_STUFF for s2 in MINIWORLD_STUFF]
    texts.append(caption(list(MINIWORLD_THINGS[:3]), list(MINIWORLD_STUFF[:2])))
    return texts
