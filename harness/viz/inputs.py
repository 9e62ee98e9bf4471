"""The demo's inputs: image files (and directories of them), read with a size limit, and class names.

Bad input never stops the whole run: a file that is not a readable image is skipped with the reason, and the
rest go on. Class lists that cannot mean what the user wants (empty, duplicates) are errors before any model is
built, since a duplicated name would split its pixels between two identical text embeddings.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ConfigError, DataError
from ..paths import read_text_file

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
ORIENTATION_TAG = 0x0112
# Larger images are refused (decoded at full size a PNG of this many pixels takes 900 MB); smaller ones are read and
# shrunk to --max-side (a JPEG is decoded at a reduced scale directly). Pillow's own limit, 89 MP, refuses 100 MP.
MAX_PIXELS = 300_000_000
MIN_SIDE = 4  # below this a ViT patch grid of the resized image is degenerate


@dataclass(frozen=True)
class LoadedImage:
    """An RGB image as the demo segments it; ``original_size`` (H, W) before the size limit."""

    path: Path
    pixels: np.ndarray  # (H, W, 3) uint8
    original_size: tuple[int, int]

    @property
    def resized(self) -> bool:
        return self.pixels.shape[:2] != self.original_size


def collect_images(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to process, in order, and notes. A directory contributes its files with image suffixes (sorted,
    not recursive); a file named explicitly is always tried, whatever its suffix; a missing path is a note."""
    files: list[Path] = []
    notes: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            others = sum(1 for p in path.iterdir() if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
            if not found:
                notes.append(f"{path}: no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
            if others:
                notes.append(f"{path}: ignored {others} file(s) without an image suffix.")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            notes.append(f"{path}: no such file or directory; skipped.")
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return [Path(p) for p in unique], notes


@contextlib.contextmanager
def _pixel_limit(limit: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit (89 MP by default) raised to ``limit`` for one read."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit  # Pillow warns above it (an error here) and refuses above twice it
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _to_rgb(img: Image.Image, path: Path) -> Image.Image:
    """RGB of 8 bits. Pillow's own conversion clips a 16-bit grey image at 255 (nearly all white): such images are
    scaled to 8 bits instead; floating-point and 32-bit images, whose range nobody states, are refused."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        grey = np.asarray(img).astype(np.float64) / 257.0  # 65535 -> 255
        return Image.fromarray(np.rint(grey).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("I", "F"):
        raise DataError(f"{path} is a {'32-bit integer' if img.mode == 'I' else 'floating-point'} image (mode "
                        f"{img.mode}); the demo reads 8- and 16-bit images. Save it as an 8-bit PNG or JPEG.")
    return img.convert("RGB")


def read_image(path: Path, max_side: int) -> LoadedImage:
    """Read ``path`` as RGB (EXIF orientation applied, alpha dropped, first frame of an animation), shrunk so
    that its longer side is at most ``max_side``. Raises `DataError` naming the file when it cannot be used."""
    try:
        with warnings.catch_warnings(), _pixel_limit(MAX_PIXELS):
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                rotated = img.getexif().get(ORIENTATION_TAG) in (5, 6, 7, 8)  # EXIF transposes swap sides
                original = (img.width, img.height) if rotated else (img.height, img.width)
                if max(original) > max_side:  # JPEG: decode at the smallest DCT scale still >= the target
                    shrink = max_side / max(original)
                    img.draft("RGB", (max(1, int(img.width * shrink)), max(1, int(img.height * shrink))))
                img = _to_rgb(ImageOps.exif_transpose(img), path)
                if max(img.size) > max_side:
                    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                pixels = np.asarray(img, dtype=np.uint8).copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path} has more than {MAX_PIXELS // 1_000_000} megapixels, more than the demo decodes; "
                        f"shrink it first (images up to that size are shrunk to --max-side).") from None
    except UnidentifiedImageError as exc:
        raise DataError(f"{path} is not an image the demo can read ({type(exc).__name__}: {exc}).") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path} cannot be read as an image ({type(exc).__name__}: {exc}).") from None
    if min(pixels.shape[:2]) < MIN_SIDE:
        raise DataError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels: too small to segment "
                        f"(each side needs at least {MIN_SIDE}).")
    return LoadedImage(path=path, pixels=pixels, original_size=original)


def parse_classes(value: str) -> list[str]:
    """Class names from ``--classes``: comma-separated text ("cat, grass, sky"), a text file with one name per
    line (blank lines and ``#`` comments ignored), or ``dataset:NAME`` for a catalogued dataset's classes.
    Raises `ConfigError` for an empty list or for duplicates (compared case- and space-insensitively)."""
    if value.startswith("dataset:"):
        from ..data import get_info

        names = list(get_info(value.removeprefix("dataset:").strip()).class_names)
        source = value
    elif Path(value).is_file():
        text = read_text_file(Path(value), "class file")
        names = [line.split("#", 1)[0] for line in text.splitlines()]
        source = f"file {value}"
    else:
        names = value.split(",")
        source = f"--classes {value!r}"
    names = [re.sub(r"\s+", " ", n.replace("\ufeff", " ")).strip() for n in names]  # as the tokenizer reads them
    names = [n for n in names if n]
    if not names:
        raise ConfigError(f"no class names in {source}. Give names separated by commas "
                          f"(--classes \"cat, grass, sky\"), a file with one name per line, or dataset:NAME.")
    seen: dict[str, str] = {}
    duplicates = []
    for name in names:
        key = name.casefold()
        if key in seen:
            duplicates.append(name if name == seen[key] else f"{seen[key]!r}/{name!r}")
        seen.setdefault(key, name)
    if duplicates:
        raise ConfigError(f"duplicate class name(s) in {source}: {', '.join(map(str, dict.fromkeys(duplicates)))}. "
                          "Each class must appear once: two identical prompts would split the class's pixels "
                          "between them. Remove the repeats (or name the classes apart).")
    return names
