"""The catalog: names, splits and class counts as the official code (METHOD_SPEC §10)."""

from __future__ import annotations

import pytest

from harness.data import get_info
from harness.data.info import DatasetInfo, Layout, SplitLayout
from harness.errors import DataError, RegistryError
from harness.registries import DATASETS

REQUIRED = {"coco_stuff_171", "voc_20", "pc_59", "ade_150", "pc_459", "ade_847", "synthetic_coco", "synthetic_voc"}


def test_every_required_dataset_is_registered():
    assert REQUIRED <= set(DATASETS.names())
    with pytest.raises(RegistryError, match="Did you mean 'voc_20'"):
        DATASETS.get("voc20")


@pytest.mark.parametrize("name,k,n_unseen", [
    ("coco_stuff_171", 171, 15), ("voc_20", 20, 5), ("pc_59", 59, 0), ("ade_150", 150, 0),
    ("pc_459", 459, 0), ("ade_847", 847, 0),
])
def test_class_counts_and_unseen_split(name, k, n_unseen):
    info = get_info(name)
    assert info.num_classes == k and len(info.unseen) == n_unseen
    assert len(info.seen) == k - n_unseen and not set(info.seen) & set(info.unseen)


def test_coco_unseen_classes_are_the_official_fifteen():
    info = get_info("coco_stuff_171")
    # METHOD_SPEC §10.1: verbatim names and train ids
    expected = {"cow": 19, "giraffe": 23, "suitcase": 28, "frisbee": 29, "skateboard": 36, "carrot": 51,
                "scissors": 76, "cardboard": 88, "clouds": 94, "grass": 112, "playingfield": 133, "river": 136,
                "road": 137, "tree": 157, "wall-concrete": 160}
    assert dict(zip(info.unseen_names, info.unseen)) == expected
    assert info.raw_ids[0] == 0 and info.raw_ids[-1] == 181  # person = id 1, wood = id 182, stored as id - 1
    assert 11 not in info.raw_ids  # COCO id 12 is unused
    assert info.test_short_side == 512 and info.test_max_size == 2560
    assert info.train.crop_size == 640 and info.train.size_divisibility == 512
    assert info.train.min_size_choices == (256, 307, 358, 409, 460, 512, 563, 614, 665, 716, 768)


def test_voc_unseen_and_training_classes():
    info = get_info("voc_20")
    assert info.unseen_names == ("pottedplant", "sheep", "sofa", "train", "tvmonitor")
    assert info.split_class_names("train") == info.class_names[:15]
    assert info.split_class_names("val") == info.class_names
    assert info.raw_ids == tuple(range(1, 21))


def test_cross_dataset_sets_have_no_unseen_and_16bit_sets_ignore_65535():
    assert get_info("ade_150").class_names[8] == "window "  # verbatim, trailing space included
    assert get_info("pc_59").class_names[49] == "diningtable"
    for name in ("pc_459", "ade_847"):
        info = get_info(name)
        assert info.ignore_index == 65535 and info.layout.val.label_suffix == ".tif"
        assert info.raw_format is None
    assert get_info("ade_847").class_names[846] == "adding machine, totalizer, totaliser"


def _info(names, **kw):
    return DatasetInfo(name="t", title="t", class_names=tuple(names), raw_format=None,
                       layout=Layout(val=SplitLayout("t/i", "t/l")), **kw)


def test_duplicate_class_names_are_rejected_naming_them():
    with pytest.raises(DataError, match=r"duplicate class names \['cat'\]"):
        _info(["cat", "dog", "cat"])
    with pytest.raises(DataError, match="duplicate class names"):
        _info(["window ", "window"])  # the same prompt after strip()


def test_bad_unseen_ids_are_rejected():
    with pytest.raises(DataError, match="out of range"):
        _info(["a", "b"], unseen=(2,))
    with pytest.raises(DataError, match="distinct"):
        _info(["a", "b"], unseen=(1, 1))
