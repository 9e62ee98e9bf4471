"""Label map -> pictures and numbers: colour overlay, per-class pixel shares, label PNG (ids as pixel values)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .palette import palette


def colourise(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W) class ids in [0, n_classes) -> (H, W, 3) uint8 colours of the fixed palette."""
    return palette(n_classes)[labels]


def boundaries(labels: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose right or lower neighbour has another label (thin lines between segments)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def blend_overlay(image: np.ndarray, labels: np.ndarray, n_classes: int, alpha: float = 0.5,
                  draw_boundaries: bool = True) -> np.ndarray:
    """image (H, W, 3) uint8 and labels (H, W) -> (H, W, 3) uint8: (1-alpha)*image + alpha*colour, with
    white segment boundaries so that neighbouring classes of similar colour stay apart."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colourise(labels, n_classes).astype(np.float32)
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    if draw_boundaries:
        out[boundaries(labels)] = 255
    return out


def pixel_shares(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes,) float64: the fraction of the image's pixels given to each class (sums to 1)."""
    counts = np.bincount(labels.ravel(), minlength=n_classes)[:n_classes]
    return counts / max(labels.size, 1)


def save_rgb_png(image: np.ndarray, path: Path) -> Path:
    Image.fromarray(np.ascontiguousarray(image.astype(np.uint8))).save(path)
    return path


def save_label_png(labels: np.ndarray, path: Path, n_classes: int) -> Path:
    """The label map with class ids as pixel values. Up to 256 classes: an 8-bit palette PNG (viewers show
    the palette's colours, programs read the ids); more: a 16-bit greyscale PNG."""
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]")
    if n_classes <= 256:
        img = Image.fromarray(labels.astype(np.uint8))  # mode L; putpalette makes it P, ids unchanged
        img.putpalette(palette(n_classes).ravel().tolist())
    else:
        img = Image.fromarray(labels.astype(np.uint16))
    img.save(path)
    return path
