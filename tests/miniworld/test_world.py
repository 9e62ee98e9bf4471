"""MiniWorld's scenes, captions and dataset: deterministic, captions name exactly what is visible, classes look
distinct, and the dataset goes through the real COCO-Stuff prepare code with its zero-shot split."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import get_info, open_dataset
from harness.data import synthetic as synthetic_module
from harness.data.class_names.miniworld import (
    MINIWORLD_NAMES,
    MINIWORLD_RAW,
    MINIWORLD_STUFF,
    MINIWORLD_UNSEEN,
)
from harness.data.miniworld import world
from harness.data.synthetic import ensure_synthetic
from harness.errors import DataError


def _named(caption: str) -> set[str]:
    # no class name is a word-bounded substring of another ("green disc" vs "red disc" need the boundary)
    return {n for n in MINIWORLD_NAMES if re.search(rf"(^|[\s,]){re.escape(n)}([\s,.]|$)", caption)}


def test_scenes_are_deterministic_and_vary():
    a = world.sample_scene(np.random.default_rng([0, 5]))
    b = world.sample_scene(np.random.default_rng([0, 5]))
    c = world.sample_scene(np.random.default_rng([0, 6]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_caption_names_exactly_the_visible_classes():
    rng = np.random.default_rng(1)
    n_things = []
    for _ in range(60):
        image, label, caption = world.sample_scene(rng)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and label.shape == (64, 64)
        counts = np.bincount(label.ravel(), minlength=len(MINIWORLD_NAMES))
        visible = {MINIWORLD_NAMES[i] for i in range(len(MINIWORLD_NAMES)) if counts[i] >= 16}
        assert _named(caption) == visible, caption
        n_things.append(len([n for n in visible if n in world.SHAPES]))
    assert max(n_things) >= 2 and min(n_things) == 0  # 0-3 things per scene, as the issue specifies


def test_caption_grammar():
    assert world.caption(["red disc", "orange ring"], ["grass"]) == "a photo of a red disc and an orange ring on grass."
    assert world.caption(["blue square", "green star", "white ellipse"], ["brick wall", "sky"]) == (
        "a photo of a blue square, a green star and a white ellipse in front of a brick wall and against the sky.")
    assert world.caption([], ["sky", "water"]) == "a photo of the sky and water."
    with pytest.raises(DataError):
        world.caption([], [])


def test_visible_threshold():
    label = np.full((8, 8), 12, np.uint8)
    label[:2, :7] = 3  # 14 pixels: hidden but for a sliver
    assert world.visible_classes(label) == [12]
    label[:2, :8] = 3  # 16 pixels
    assert world.visible_classes(label) == [3, 12]


def test_stuff_textures_are_distinct_by_colour():
    rng = np.random.default_rng(0)
    means = {n: world.TEXTURES[n](64, 64, rng).reshape(-1, 3).mean(0) for n in MINIWORLD_STUFF}
    for i, a in enumerate(MINIWORLD_STUFF):
        for b in MINIWORLD_STUFF[i + 1:]:
            assert np.abs(means[a] - means[b]).max() > 25, (a, b, means[a], means[b])


def test_miniworld_looks_are_data_not_patched_into_the_shared_tables():
    shared = (dict(synthetic_module.TEXTURES), dict(synthetic_module.SHAPES))
    info = get_info("miniworld")
    spec = synthetic_module.scene_spec(info)
    assert spec.looks is world.APPEARANCES  # named by the catalog entry, handed to the generator
    assert {n for n, _ in spec.stuff} | {n for n, _ in spec.things} == set(MINIWORLD_NAMES)
    assert (dict(synthetic_module.TEXTURES), dict(synthetic_module.SHAPES)) == shared  # importing changed nothing
    assert "grass" in world.TEXTURES and "grass" not in synthetic_module.TEXTURES
    assert synthetic_module.scene_spec(get_info("synthetic_coco")).looks is synthetic_module.SHARED


def test_split_mirrors_coco():
    info = get_info("miniworld")
    assert info.num_classes == 20 and len(info.unseen) == 5
    assert set(info.unseen_names) == {"yellow triangle", "cyan diamond", "green disc", "grass", "road"}
    assert info.raw_format == "coco_stuff" and info.synthetic


@pytest.fixture(scope="module")
def miniworld_root(tmp_path_factory) -> Path:
    return ensure_synthetic("miniworld", tmp_path_factory.mktemp("mw"), n_train=10, n_val=6, size=64, seed=2)


def test_dataset_prepared_by_the_coco_converter(miniworld_root):
    info = get_info("miniworld")
    raw_to_train = {r: i for i, r in enumerate(MINIWORLD_RAW)}
    seen_index = {c: k for k, c in enumerate(info.seen)}
    raw_root = miniworld_root / "_raw" / "miniworld"
    val = open_dataset("miniworld", "val", miniworld_root)
    train = open_dataset("miniworld", "train", miniworld_root)
    assert len(val) == 6 and len(train) == 10
    classes_seen_in_val: set[int] = set()
    for split, ds, folder in (("val", val, "val2017"), ("train", train, "train2017")):
        for i in range(len(ds)):
            image, label = ds.load(i)
            raw = np.array(Image.open(raw_root / "stuffthingmaps" / folder / f"{ds.samples[i].label.stem}.png"))
            # independent mapping: raw COCO id-1 -> train id (val) -> seen index (train); the rest is ignore
            expected = np.full(raw.shape, 255, np.int64)
            for r, t in raw_to_train.items():
                if split == "val":
                    expected[raw == r] = t
                elif t in seen_index:
                    expected[raw == r] = seen_index[t]
            assert np.array_equal(label.numpy(), expected)
            if split == "val":
                classes_seen_in_val |= set(np.unique(expected).tolist()) - {255}
    assert len(classes_seen_in_val) >= 8  # the split is populated, not all-ignore
    assert np.isin(list(MINIWORLD_UNSEEN), list(range(20))).all()


def test_dataset_generation_is_deterministic(miniworld_root, tmp_path):
    again = ensure_synthetic("miniworld", tmp_path, n_train=10, n_val=6, size=64, seed=2)
    a = open_dataset("miniworld", "val", miniworld_root)
    b = open_dataset("miniworld", "val", again)
    for i in range(len(a)):
        assert np.array_equal(a.load(i)[1].numpy(), b.load(i)[1].numpy())
