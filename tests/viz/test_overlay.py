"""Palette, overlay, pixel shares and label PNGs against hand computations."""

import numpy as np
import pytest
from PIL import Image

from harness.viz.overlay import blend_overlay, boundaries, pixel_shares, save_label_png, save_rgb_png
from harness.viz.palette import KELLY, class_colour, palette


def test_palette_is_fixed_per_index_and_distinct():
    assert class_colour(0) == (0xF3, 0xC3, 0x00)  # Kelly's first colour
    assert palette(5).tolist() == palette(300)[:5].tolist()  # independent of how many classes a picture has
    many = [class_colour(i) for i in range(300)]
    assert len(set(many[: len(KELLY)])) == len(KELLY)
    assert len(set(many)) > 290  # the hue sequence rarely repeats a colour
    assert all(0 <= v <= 255 for c in many for v in c)
    with pytest.raises(ValueError):
        class_colour(-1)


def test_blend_overlay_and_boundaries_by_hand():
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 0, 1], [0, 0, 1]])
    out = blend_overlay(image, labels, 2, alpha=0.25, draw_boundaries=False)
    c0, c1 = np.array(class_colour(0)), np.array(class_colour(1))
    assert out[0, 0].tolist() == np.rint(0.75 * 100 + 0.25 * c0).astype(int).tolist()
    assert out[1, 2].tolist() == np.rint(0.75 * 100 + 0.25 * c1).astype(int).tolist()
    assert boundaries(labels).tolist() == [[False, True, False], [False, True, False]]
    with_lines = blend_overlay(image, labels, 2, alpha=0.25)
    assert with_lines[0, 1].tolist() == [255, 255, 255] and with_lines[0, 0].tolist() == out[0, 0].tolist()


def test_pixel_shares_count_pixels():
    labels = np.array([[0, 2, 2, 2], [2, 2, 2, 2]])
    assert pixel_shares(labels, 4).tolist() == [1 / 8, 0.0, 7 / 8, 0.0]


def test_label_png_keeps_ids_and_shows_palette(tmp_path):
    labels = np.array([[0, 1, 2], [2, 2, 0]])
    path = save_label_png(labels, tmp_path / "l.png", 3)
    img = Image.open(path)
    assert img.mode == "P" and img.size == (3, 2)
    assert np.array(img).tolist() == labels.tolist()  # ids, not colours
    assert img.getpalette()[3:6] == list(class_colour(1))
    wide = np.arange(300).reshape(10, 30)  # more classes than an 8-bit palette holds
    assert np.array(Image.open(save_label_png(wide, tmp_path / "w.png", 300))).tolist() == wide.tolist()
    with pytest.raises(ValueError):
        save_label_png(np.array([[3]]), tmp_path / "bad.png", 3)
    rgb = save_rgb_png(np.zeros((4, 5, 3), dtype=np.uint8), tmp_path / "rgb.png")
    assert Image.open(rgb).mode == "RGB"
