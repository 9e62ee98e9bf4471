"""The demo's inputs: class lists, image collection, unreadable files, the size limit."""

import numpy as np
import pytest
from PIL import Image

from harness.errors import ConfigError, DataError, RegistryError
from harness.viz.inputs import collect_images, parse_classes, read_image


def test_classes_from_text_file_and_dataset(tmp_path):
    assert parse_classes(" cat,  grass\n, sky ,") == ["cat", "grass", "sky"]
    listing = tmp_path / "classes.txt"
    listing.write_text("# my classes\ntraffic  light\n\nwall, brick   # ADE-style synonyms stay one name\n")
    assert parse_classes(str(listing)) == ["traffic light", "wall, brick"]
    from harness.data import get_info

    assert parse_classes("dataset:synthetic_voc") == list(get_info("synthetic_voc").class_names)


@pytest.mark.parametrize("value", ["", " , ,"])
def test_empty_class_lists_are_errors(value, tmp_path):
    with pytest.raises(ConfigError, match="no class names"):
        parse_classes(value)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(ConfigError, match="no class names"):
        parse_classes(str(empty))
    with pytest.raises(RegistryError, match="unknown dataset"):
        parse_classes("dataset:no_such_dataset")


def test_duplicates_are_named(tmp_path):
    with pytest.raises(ConfigError, match="'Cat'/'cat'"):
        parse_classes("Cat, grass, cat")
    with pytest.raises(ConfigError, match="grass"):
        parse_classes("grass, sky, grass")


def test_collect_images_from_files_and_directories(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    for name in ("b.png", "a.JPG"):
        (folder / name).write_bytes(b"")
    (folder / "notes.txt").write_text("x")
    explicit = tmp_path / "odd.name"
    explicit.write_bytes(b"")
    files, notes = collect_images([folder, explicit, tmp_path / "missing.png", folder / "b.png"])
    assert [f.name for f in files] == ["a.JPG", "b.png", "odd.name"]  # sorted, deduplicated, explicit kept
    assert any("ignored 1 file" in n for n in notes) and any("missing.png" in n for n in notes)


def test_read_image_modes_limit_and_bad_files(tmp_path):
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = read_image(tmp_path / "rgba.png", max_side=100)
    assert loaded.pixels.shape == (30, 40, 3) and loaded.pixels[0, 0].tolist() == [200, 0, 0]
    assert not loaded.resized

    Image.new("RGB", (400, 100), (1, 2, 3)).save(tmp_path / "big.jpg")
    big = read_image(tmp_path / "big.jpg", max_side=128)
    assert big.resized and big.original_size == (100, 400) and big.pixels.shape == (32, 128, 3)

    rotated = Image.new("RGB", (60, 20))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 CW": the photo is 20 wide and 60 high as shown
    rotated.save(tmp_path / "rot.jpg", exif=exif)
    shown = read_image(tmp_path / "rot.jpg", max_side=32)
    assert shown.original_size == (60, 20) and shown.pixels.shape[:2] == (32, 11)

    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match="text.png"):
        read_image(tmp_path / "text.png", max_side=100)
    good = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg", max_side=1000)
    Image.new("RGB", (2, 50)).save(tmp_path / "thin.png")
    with pytest.raises(DataError, match="too small"):
        read_image(tmp_path / "thin.png", max_side=100)
