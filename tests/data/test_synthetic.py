"""Synthetic raw data: real format quirks, reproducible, and classes that look like their names."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from harness.data import get_info
from harness.data.synthetic import SHAPES, TEXTURES, write_synthetic_raw
from harness.errors import DataError


def _values(folder):
    return set().union(*(set(np.unique(np.array(Image.open(p))).tolist()) for p in folder.glob("*.png")))


def test_raw_quirks_of_each_format_are_present(synthetic_raw):
    coco = _values(synthetic_raw["synthetic_coco"] / "stuffthingmaps/val2017") | _values(
        synthetic_raw["synthetic_coco"] / "stuffthingmaps/train2017")
    assert 11 in coco and 255 in coco  # an unused COCO id and "unlabeled"
    assert coco - {11, 255} <= set(get_info("synthetic_coco").raw_ids)
    voc = synthetic_raw["synthetic_voc"]
    assert {0, 255} <= _values(voc / "SegmentationClassAug")  # background and object borders
    listed = set((voc / "train.txt").read_text().split()) | set((voc / "val.txt").read_text().split())
    assert len(list((voc / "JPEGImages").glob("*.jpg"))) > len(listed)  # unlisted extra images, as in VOC
    assert 0 in _values(synthetic_raw["synthetic_ade"] / "annotations/validation")  # ADE "other"


def test_same_seed_same_bytes(tmp_path):
    def digest(root):
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()

    a = write_synthetic_raw("ade20k", tmp_path / "a", n_train=3, n_val=2, size=40, seed=9)
    b = write_synthetic_raw("ade20k", tmp_path / "b", n_train=3, n_val=2, size=40, seed=9)
    c = write_synthetic_raw("ade20k", tmp_path / "c", n_train=3, n_val=2, size=40, seed=10)
    assert digest(a) == digest(b) != digest(c)


def test_every_class_looks_like_its_name(tmp_path):
    """Interior pixels of each shape carry its colour; each texture region shows its own pattern."""
    from scipy.ndimage import binary_erosion

    info = get_info("synthetic_coco")
    raw = write_synthetic_raw("coco_stuff", tmp_path / "coco", n_train=30, n_val=0, size=96, seed=0)
    pixels: dict[str, list[np.ndarray]] = {n: [] for n in info.class_names}
    for lab_path in (raw / "stuffthingmaps/train2017").glob("*.png"):
        label = np.array(Image.open(lab_path))
        image = np.array(Image.open(raw / "train2017" / f"{lab_path.stem}.jpg")).astype(float)
        for name, raw_id in zip(info.class_names, info.raw_ids):
            inner = binary_erosion(label == raw_id, iterations=2)  # away from JPEG-blurred edges
            if inner.any():
                pixels[name].append(image[inner])
    for name in info.class_names:
        assert pixels[name], f"class {name!r} never drawn in 30 scenes"
        values = np.concatenate(pixels[name])
        if name in SHAPES:
            assert np.abs(values.mean(0) - SHAPES[name].color).max() < 25, name
    # textures: the pattern statistics differ, e.g. the gradient sky is smooth and blue, the checks are grey
    sky, wall = np.concatenate(pixels["gradient sky"]), np.concatenate(pixels["checkered wall"])
    assert sky[:, 2].mean() > sky[:, 0].mean() + 40
    assert np.abs(wall[:, 0] - wall[:, 2]).mean() < 10 and wall[:, 0].std() > 50
    assert set(TEXTURES) >= {n for n in info.class_names if n not in SHAPES}


def test_unknown_format_or_mismatched_dataset(tmp_path):
    with pytest.raises(DataError, match="unknown raw format"):
        write_synthetic_raw("cityscapes", tmp_path)
    with pytest.raises(DataError, match="not 'voc_aug'"):
        write_synthetic_raw("voc_aug", tmp_path, dataset="synthetic_coco")


def test_ensure_synthetic_prepares_once(tmp_path):
    from harness.data import open_dataset
    from harness.data.synthetic import ensure_synthetic

    root = ensure_synthetic("synthetic_pc", tmp_path, n_train=3, n_val=2, size=32)
    manifest = root / "synthetic_pc/synthetic_pc.harness_prepared.json"
    stamp = manifest.stat().st_mtime_ns
    assert ensure_synthetic("synthetic_pc", tmp_path, n_train=3, n_val=2, size=32) == root
    assert manifest.stat().st_mtime_ns == stamp  # kept, not rebuilt
    assert len(open_dataset("synthetic_pc", "val", root)) == 2
    with pytest.raises(DataError, match="not a synthetic dataset"):
        ensure_synthetic("voc_20", tmp_path)



def test_runs_starting_together_take_turns(tmp_path):
    # Two runs on one data root used to write the same temporary files at once and fail (seen in practice).
    import os
    import subprocess
    import sys

    script = ("import sys; from harness.data import open_dataset; from harness.data.synthetic import ensure_synthetic;"
              "ensure_synthetic('synthetic_coco', sys.argv[1], n_train=40, n_val=20, size=32);"
              "print(len(open_dataset('synthetic_coco', 'val', sys.argv[1])))")
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}  # the test doubles are not on its path
    children = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outcomes = [child.communicate(timeout=120) for child in children]
    assert [(c.returncode, out.strip()) for c, (out, _) in zip(children, outcomes)] == [(0, "20")] * 3, outcomes
