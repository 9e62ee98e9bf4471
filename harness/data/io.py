"""Reading and writing images and label maps, with errors that name the file.

Labels are read as integer arrays without any palette conversion: VOC-style palettised PNGs yield their
indices, 16-bit TIFF/PNG labels (PC-459, ADE-847) yield uint16 values.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.errors import DataError
from harness.paths import file_mode

# Dataset images and label maps are at most a few megapixels; above this a file is refused before it is decoded
# (a 400-megapixel PNG compresses to a few MB and decodes to 1.2 GB). Pillow's own default, set deliberately.
MAX_PIXELS = 89_478_485
LABEL_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}  # what Pillow calls the format a suffix promises


@contextlib.contextmanager
def _open_bounded(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open`` that refuses more than MAX_PIXELS with a DataError naming the file."""
    previous = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(path) as im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{path} has more than {MAX_PIXELS} pixels, far more than a dataset image or label map; "
                        f"it is not one (replace it, or downscale it with its labels).") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def read_image(path: str | Path) -> np.ndarray:
    """An RGB uint8 HxWx3 array."""
    try:
        with _open_bounded(path) as im:
            return np.array(im.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist. Re-run the prepare command for its dataset.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(
            f"image {path} cannot be read ({exc}). The file is damaged or not an image: replace it from the "
            f"original download and re-run the prepare command."
        ) from None


def read_label(path: str | Path, remedy: str = "replace it and re-run prepare") -> np.ndarray:
    """The label map as stored (uint8 or uint16 HxW); ``remedy`` ends the message of an unreadable file."""
    try:
        with _open_bounded(path) as im:
            expected = LABEL_FORMATS.get(Path(path).suffix.lower())
            if expected and im.format != expected:
                raise DataError(f"label map {path} is a {im.format} file named {Path(path).suffix}; a lossy or "
                                f"foreign format changes label values. Write it as a real {expected}.")
            if im.mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I", "1"):
                raise DataError(
                    f"label map {path} has image mode {im.mode!r}; a label map must be a single-channel "
                    f"integer image (8- or 16-bit), not a colour image."
                )
            arr = np.array(im)
    except FileNotFoundError:
        raise DataError(f"label map {path} does not exist. Re-run the prepare command for its dataset.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"label map {path} cannot be read ({exc}); {remedy}.") from None
    if arr.ndim != 2:
        raise DataError(f"label map {path} has shape {arr.shape}; expected a 2-D map.")
    return arr


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with _open_bounded(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist.") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"image {path} cannot be read ({exc}).") from None
    return h, w


def write_label_png(path: Path, label: np.ndarray) -> None:
    """Write an 8-bit (or 16-bit for values > 255) label PNG atomically, so a killed run leaves no torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if label.max(initial=0) > 255:
        im = Image.fromarray(label.astype(np.uint16))
    else:
        im = Image.fromarray(label.astype(np.uint8))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.fchmod(fd, file_mode())  # mkstemp's 0600 would survive the rename
    os.close(fd)
    try:
        im.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def link_or_copy(src: Path, dst: Path) -> None:
    """Place `src` at `dst` by hard link when possible (no extra disk for COCO's 19 GB), else copy."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if missing) for the `with` block, so processes that
    prepare the same data take turns. Where `fcntl` is missing (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
