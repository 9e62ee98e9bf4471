"""MiniWorld-BG: MiniWorld's scenes converted as COCO-Object is (stuff -> background), so the training-free
background path runs with real signal on a CPU. Drawn from the same seed, its images are MiniWorld's and its
labels MiniWorld's with every stuff class merged into class 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data import get_info, open_dataset
from harness.data.class_names.miniworld import MINIWORLD_STUFF, MINIWORLD_THINGS
from harness.data.synthetic import ensure_synthetic


def test_catalog_entry_has_background_and_the_things():
    info = get_info("miniworld_bg")
    assert info.has_background and info.class_names == ("background", *MINIWORLD_THINGS)
    assert info.synthetic and info.layout.train is None  # evaluation only
    assert len(info.background_raw_ids) == len(MINIWORLD_STUFF)


def test_same_scenes_as_miniworld_with_stuff_merged_into_background(tmp_path):
    params = {"n_train": 2, "n_val": 5, "size": 48, "seed": 3}
    ensure_synthetic("miniworld", tmp_path, **params)
    ensure_synthetic("miniworld_bg", tmp_path, **params)
    world, bg = open_dataset("miniworld", "val", tmp_path), open_dataset("miniworld_bg", "val", tmp_path)
    assert len(world) == len(bg) == 5
    n_things = len(MINIWORLD_THINGS)
    seen_background = False
    for i in range(5):
        a, b = world[i], bg[i]
        assert Path(a["file_name"]).name == Path(b["file_name"]).name
        assert np.array_equal(a["image"].numpy(), b["image"].numpy())
        la, lb = a["label"].numpy(), b["label"].numpy()
        things = la < n_things
        assert np.array_equal(lb[things], la[things] + 1)  # MiniWorld things 0..11 are classes 1..12 here
        stuff = (la >= n_things) & (la != 255)
        assert (lb[stuff] == 0).all()
        seen_background |= bool(stuff.any())
        # MiniWorld's ignored pixels: COCO's unlabeled patches (background here, as COCO-Object) or the unused id
        assert set(np.unique(lb[la == 255]).tolist()) <= {0, 255}
    assert seen_background
