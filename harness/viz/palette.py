"""A fixed colour per class index, independent of how many classes a picture has.

The first 20 are Kelly's colours of maximum contrast (white and black left out: they read as "nothing" and
"boundary"); later indices step the hue by the golden ratio, which keeps neighbouring indices far apart.
"""

from __future__ import annotations

import colorsys

import numpy as np

KELLY = (
    "F3C300", "875692", "F38400", "A1CAF1", "BE0032", "C2B280", "848482", "008856", "E68FAC", "0067A5",
    "F99379", "604E97", "F6A600", "B3446C", "DCD300", "882D17", "8DB600", "654522", "E25822", "2B3D26",
)
GOLDEN = 0.618033988749895


def class_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour (0-255) of class ``index``; the same for every call."""
    if index < 0:
        raise ValueError(f"class index must be >= 0, got {index}")
    if index < len(KELLY):
        code = KELLY[index]
        return int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16)
    j = index - len(KELLY)
    hue = (0.11 + j * GOLDEN) % 1.0
    saturation = (0.55, 0.85, 0.7)[j % 3]
    value = (0.9, 0.65, 0.8)[(j // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8: the colours of classes 0..n-1."""
    return np.array([class_colour(i) for i in range(n)], dtype=np.uint8).reshape(n, 3)
