"""open_dataset: items, class spaces per split, seeded transforms, and errors that say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data import get_info, open_dataset
from harness.data.transforms import inference_transform, train_transform
from harness.errors import DataError


def test_items_are_uint8_images_and_int64_labels_at_original_size(prepared_root):
    ds = open_dataset("synthetic_coco", "val", prepared_root)
    assert len(ds) == 6 and ds.class_names == get_info("synthetic_coco").class_names
    item = ds[0]
    assert item["image"].dtype == torch.uint8 and item["image"].shape[0] == 3
    assert item["label"].dtype == torch.int64
    assert item["image"].shape[1:] == item["label"].shape == (item["height"], item["width"])
    assert item["file_name"].endswith(".jpg")
    np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(),
                                  np.array(Image.open(item["file_name"]).convert("RGB")))


def test_train_split_is_labelled_in_the_seen_class_space(prepared_root):
    info = get_info("synthetic_coco")
    ds = open_dataset("synthetic_coco", "train", prepared_root)
    assert ds.class_names == info.seen_names and len(ds.class_names) == info.num_classes - len(info.unseen)
    values = torch.cat([ds[i]["label"].unique() for i in range(len(ds))]).unique()
    assert set(values.tolist()) <= set(range(len(info.seen))) | {255}


def test_transforms_are_reproducible_per_seed_and_epoch(prepared_root):
    info = get_info("synthetic_voc")
    ds = open_dataset("synthetic_voc", "train", prepared_root, transform=train_transform(info.train), seed=1)
    a, b = ds[2], ds[2]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert a["image"].shape[1:] == (info.train.size_divisibility,) * 2
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], a["image"])
    other = open_dataset("synthetic_voc", "train", prepared_root, transform=train_transform(info.train), seed=2)
    assert not torch.equal(other[2]["image"], a["image"])
    test = open_dataset("synthetic_voc", "val", prepared_root,
                        transform=inference_transform(info.test_short_side, info.test_max_size))
    item = test[0]
    assert min(item["image"].shape[1:]) == info.test_short_side and item["label"].shape == (item["height"],
                                                                                         item["width"])


def test_missing_root_says_where_it_looked_and_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as err:
        open_dataset("synthetic_coco", "val")
    assert str(tmp_path / "nowhere" / "synthetic_coco/stuffthingmaps_detectron2/val2017") in str(err.value)
    assert "python -m harness prepare synthetic_coco --raw" in str(err.value)
    with pytest.raises(DataError, match="no prepared 'train' split"):
        open_dataset("pc_459", "train", tmp_path)


def test_unreadable_image_is_named(prepared_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(prepared_root / "synthetic_ade", root / "synthetic_ade")
    ds = open_dataset("synthetic_ade", "val", root)
    victim = ds.samples[1].image
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"image {victim} cannot be read"):
        ds[1]


def test_out_of_range_label_is_named_on_load(prepared_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(prepared_root / "synthetic_voc", root / "synthetic_voc")
    ds = open_dataset("synthetic_voc", "train", root)  # 6 seen classes in the training split
    label = np.array(Image.open(ds.samples[0].label))
    label[0, 0] = 6
    Image.fromarray(label).save(ds.samples[0].label)
    with pytest.raises(DataError, match=rf"{ds.samples[0].label} holds values \[6\] outside 0..5"):
        ds[0]
