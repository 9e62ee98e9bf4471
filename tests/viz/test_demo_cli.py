"""`python -m harness demo` end to end with a tiny random model: files, sizes, ids, shares, bad inputs."""

import json

import numpy as np
import pytest
from PIL import Image

from harness.__main__ import main

from .conftest import scene

TINY_OPTIONS = ["--option", "clip_arch=tiny-vit-p16", "--option", "proposals={preset: smoke}",
                "--option", "prompt_layers=[1, 2]", "--option", "test_short_side=64"]
CLASSES = "sky, grass, red disc"


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(scene(64, 96)).save(folder / "scene.png")
    Image.fromarray(scene(100, 300)).save(folder / "wide.jpg")  # larger than --max-side 150
    (folder / "broken.png").write_text("this is not a PNG")
    (folder / "readme.txt").write_text("not an image suffix: ignored")
    return folder


def test_demo_writes_everything_per_image_and_skips_bad_files(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["demo", str(inputs), "--classes", CLASSES, *TINY_OPTIONS, "--out", str(out), "--max-side", "150",
               "--device", "cpu", "--no-progress", "--figure", "--patches", "10,10"])
    captured = capsys.readouterr()
    assert rc == 1  # a file was skipped
    assert "broken.png" in captured.out and "not an image" in captured.out
    assert "300x100 is larger than the limit (--max-side 150); segmented at 150x50" in captured.out
    assert "THIS OUTPUT IS MEANINGLESS" in captured.err and "random weights" in captured.err

    for stem, size in (("scene", (96, 64)), ("wide", (150, 50))):
        labels = Image.open(out / f"{stem}_labels.png")
        assert labels.size == size and labels.mode == "P"
        ids = np.array(labels)
        assert ids.max() < 3  # only the three classes' ids
        overlay = Image.open(out / f"{stem}_overlay.png")
        assert overlay.mode == "RGB" and overlay.size == size
        shares = json.loads((out / f"{stem}_shares.json").read_text())
        counts = np.bincount(ids.ravel(), minlength=3) / ids.size
        assert [shares["shares"][n] for n in ("sky", "grass", "red disc")] == pytest.approx(counts.tolist())
        assert shares["label_ids"] == {"sky": 0, "grass": 1, "red disc": 2} and shares["meaningless"]
        assert (out / f"{stem}_panel.png").stat().st_size > 0 and (out / f"{stem}_attention.png").exists()

    summary = json.loads((out / "demo.json").read_text())
    assert [s["source"].rsplit("/", 1)[-1] for s in summary["skipped"]] == ["broken.png"]
    assert [i["original_size"] for i in summary["images"]] == [[64, 96], [100, 300]]
    assert summary["weights"]["clip"]["source"] == "random" and len(summary["meaningless"]) == 2


@pytest.mark.parametrize("classes, message", [(" , ", "no class names"), ("cat, dog, Cat", "duplicate")])
def test_bad_class_lists_exit_2_before_building_anything(classes, message, inputs, tmp_path, capsys):
    assert main(["demo", str(inputs), "--classes", classes, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_nothing_readable_exits_2(tmp_path, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    rc = main(["demo", str(bad), "--classes", CLASSES, *TINY_OPTIONS, "--option", "clip_weights=random",
               "--out", str(tmp_path / "o"), "--no-progress", "--device", "cpu"])
    assert rc == 2 and "none of the inputs could be read" in capsys.readouterr().err
