"""prepare: raw downloads -> prepared layout, on hand-made raw files of the real datasets and on synthetic data.

Expected train ids are computed by hand from METHOD_SPEC §10 (not from the converter's lookup table).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import get_info, list_samples, verify_prepared
from harness.data.prepare import prepare_dataset
from harness.errors import DataError

IGN = 255


def _write_pair(image_path: Path, label_path: Path, label: np.ndarray) -> None:
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*label.shape, 3), 90, np.uint8)).save(image_path)
    Image.fromarray(label.astype(np.uint8)).save(label_path)


def _label(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def _quiet(info, raw, out):
    return prepare_dataset(info, raw, out, workers=1, progress=False, log=lambda _: None)


def test_coco_stuff_171_ids_unseen_unused_and_ignore(tmp_path):
    raw, out = tmp_path / "coco", tmp_path / "datasets"
    # raw values are COCO id - 1: 0 person, 20 cow (unseen), 11 unused id 12, 181 wood, 91 banner, 255 unlabeled
    label = np.array([[0, 20, 11, 181, 91, 255]], np.uint8).repeat(2, axis=0)
    only_unseen = np.array([[20, 24, 255, 11, 20, 20]], np.uint8).repeat(2, axis=0)  # cow, giraffe, ignore
    for folder in ("train2017", "val2017"):
        _write_pair(raw / folder / "000000000001.jpg", raw / "stuffthingmaps" / folder / "000000000001.png", label)
        _write_pair(raw / folder / "000000000002.jpg", raw / "stuffthingmaps" / folder / "000000000002.png",
                    only_unseen)
    manifest = _quiet(get_info("coco_stuff_171"), raw, out)

    val = _label(out / "coco/stuffthingmaps_detectron2/val2017/000000000001.png")
    # person 0, cow 19, unused -> ignore, wood 170, banner 80 (first stuff class), unlabeled -> ignore
    assert val[0].tolist() == [0, 19, IGN, 170, 80, IGN]
    train = _label(out / "coco/stuffthingmaps_detectron2/train2017_base/000000000001.png")
    # seen-only ids: wood 170 - 15 unseen = 155; banner 80 - 7 unseen things before it = 73; cow ignored
    assert train[0].tolist() == [0, IGN, IGN, 155, 73, IGN]
    # the image with only unseen pixels has no seen-only label map, so it is no training sample
    assert not (out / "coco/stuffthingmaps_detectron2/train2017_base/000000000002.png").exists()
    assert (out / "coco/stuffthingmaps_detectron2/val2017/000000000002.png").exists()
    assert manifest["splits"]["train"] == {"samples": 1, "left_out_no_labelled_pixel": 1, "raw_pairs": 2,
                                           "classes": 156}
    assert manifest["splits"]["val"]["samples"] == 2
    assert [s.stem for s in list_samples(get_info("coco_stuff_171"), "train", out)] == ["000000000001"]
    assert (out / "coco/val2017/000000000002.jpg").is_file()


def test_voc_background_ignored_and_unseen_only_images_left_out(tmp_path):
    raw, out = tmp_path / "VOC2012", tmp_path / "datasets"
    labels = {
        "2007_000001": np.array([[0, 1, 15, 255, 20, 16]]),  # bg, aeroplane, person, border, tvmonitor, pottedplant
        "2007_000002": np.array([[0, 0, 17, 255, 17, 0]]),  # only a sheep (unseen) on background
    }
    for stem, lab in labels.items():
        _write_pair(raw / "JPEGImages" / f"{stem}.jpg", raw / "SegmentationClassAug" / f"{stem}.png", lab)
    (raw / "train.txt").write_text("2007_000001\n2007_000002\n")
    (raw / "val.txt").write_text("2007_000001\n2007_000002\n")
    _quiet(get_info("voc_20"), raw, out)
    ann = out / "VOC2012/annotations_detectron2"
    assert _label(ann / "val/2007_000001.png")[0].tolist() == [IGN, 0, 14, IGN, 19, 15]
    assert _label(ann / "train_base/2007_000001.png")[0].tolist() == [IGN, 0, 14, IGN, IGN, IGN]
    assert _label(ann / "val/2007_000002.png")[0].tolist() == [IGN, IGN, 16, IGN, 16, IGN]
    assert not (ann / "train_base/2007_000002.png").exists()


def test_ade150_and_pc59_subtract_one_with_zero_ignored(tmp_path):
    raw = tmp_path / "ADEChallengeData2016"
    for folder in ("training", "validation"):
        _write_pair(raw / "images" / folder / "ADE_x_1.jpg", raw / "annotations" / folder / "ADE_x_1.png",
                    np.array([[0, 1, 150, 75]]))
    _quiet(get_info("ade_150"), raw, tmp_path / "d")
    got = _label(tmp_path / "d/ADEChallengeData2016/annotations_detectron2/validation/ADE_x_1.png")
    assert got[0].tolist() == [IGN, 0, 149, 74]

    raw = tmp_path / "VOC2010"
    _write_pair(raw / "JPEGImages/2008_000002.jpg", raw / "SegmentationClassContext/2008_000002.png",
                np.array([[0, 1, 59, 60]]))  # 60 is no PC-59 class
    (raw / "ImageSets/SegmentationContext").mkdir(parents=True)
    for split in ("train", "val"):
        (raw / f"ImageSets/SegmentationContext/{split}.txt").write_text("2008_000002\n")
    _quiet(get_info("pc_59"), raw, tmp_path / "d")
    assert _label(tmp_path / "d/pcontext/val/label/2008_000002.png")[0].tolist() == [IGN, 0, 58, IGN]


@pytest.mark.parametrize("name", ["synthetic_coco", "synthetic_voc", "synthetic_pc", "synthetic_ade"])
def test_synthetic_prepare_matches_an_independent_mapping(name, synthetic_raw, prepared_root):
    """Pixel-exact agreement with a mapping written from the catalog's raw ids in the test."""
    info = get_info(name)
    raw_to_val = {raw: i for i, raw in enumerate(info.raw_ids)}
    seen_names = [n for i, n in enumerate(info.class_names) if i not in info.unseen]
    raw_to_train = {raw: seen_names.index(info.class_names[i]) for i, raw in enumerate(info.raw_ids)
                    if i not in info.unseen}
    for split, mapping in (("val", raw_to_val), ("train", raw_to_train)):
        samples = list_samples(info, split, prepared_root)
        assert samples
        for s in samples:
            raw_label = _raw_label_of(name, synthetic_raw[name], split, s.stem)
            expected = np.vectorize(lambda v, m=mapping: m.get(int(v), IGN))(raw_label)
            np.testing.assert_array_equal(_label(s.label), expected)
            assert Image.open(s.image).size == Image.open(s.label).size


def _raw_label_of(name: str, raw: Path, split: str, stem: str) -> np.ndarray:
    if name == "synthetic_coco":
        return _label(raw / "stuffthingmaps" / {"train": "train2017", "val": "val2017"}[split] / f"{stem}.png")
    if name == "synthetic_voc":
        return _label(raw / "SegmentationClassAug" / f"{stem}.png")
    if name == "synthetic_pc":
        return _label(raw / "SegmentationClassContext" / f"{stem}.png")
    return _label(raw / "annotations" / {"train": "training", "val": "validation"}[split] / f"{stem}.png")


def test_synthetic_voc_leaves_out_unseen_only_training_images(synthetic_raw, prepared_root):
    info = get_info("synthetic_voc")
    raw = synthetic_raw["synthetic_voc"]
    listed = (raw / "train.txt").read_text().split()
    unseen_raw = {info.raw_ids[u] for u in info.unseen}
    seen_raw = {info.raw_ids[s] for s in info.seen}
    kept = {s.stem for s in list_samples(info, "train", prepared_root)}
    for stem in listed:
        values = set(np.unique(_label(raw / "SegmentationClassAug" / f"{stem}.png")).tolist())
        assert (stem in kept) == bool(values & seen_raw), (stem, values, unseen_raw)
    manifest = json.loads((prepared_root / "synthetic_voc/synthetic_voc.harness_prepared.json").read_text())
    assert manifest["splits"]["train"]["samples"] + manifest["splits"]["train"]["left_out_no_labelled_pixel"] \
        == len(listed)


def test_prepare_resumes_and_rewrites_only_what_is_missing(tmp_path, synthetic_raw):
    info = get_info("synthetic_ade")
    out = tmp_path / "d"
    _quiet(info, synthetic_raw["synthetic_ade"], out)
    labels = sorted((out / info.layout.val.label_dir).glob("*.png"))
    os.utime(labels[1], (1_000_000, 1_000_000))
    labels[0].unlink()
    _quiet(info, synthetic_raw["synthetic_ade"], out)
    assert labels[0].is_file()  # re-created
    assert labels[1].stat().st_mtime == 1_000_000  # untouched: skipped as done


def test_inconsistent_prepared_data_is_reported_with_file_names(tmp_path, synthetic_raw):
    info = get_info("synthetic_pc")
    out = tmp_path / "d"
    _quiet(info, synthetic_raw["synthetic_pc"], out)
    label_dir = out / info.layout.val.label_dir
    first = sorted(label_dir.glob("*.png"))[0]

    bad = _label(first).copy()
    bad[0, 0] = 40  # synthetic_pc has 8 classes
    Image.fromarray(bad).save(first)
    with pytest.raises(DataError, match=rf"values outside 0..7 and 255.*{first.name}"):
        verify_prepared(info, out, deep=True)

    Image.fromarray(bad[:-3] * 0).save(first)  # size mismatch with its image
    with pytest.raises(DataError, match=rf"differ in size from their image: {first.name}"):
        verify_prepared(info, out, deep=True)

    extra = label_dir / "2010_999999.png"
    Image.fromarray(bad).save(extra)
    with pytest.raises(DataError, match="have no image.*2010_999999.jpg"):
        verify_prepared(info, out)
    (out / info.layout.val.image_dir / "2010_999999.jpg").write_bytes((out / info.layout.val.image_dir).glob(
        "*.jpg").__next__().read_bytes())
    with pytest.raises(DataError, match=r"found 7 samples .* but prepare wrote 6 \(manifest"):
        verify_prepared(info, out)


def test_missing_dataset_names_the_path_and_the_prepare_command(tmp_path):
    with pytest.raises(DataError) as err:
        verify_prepared(get_info("voc_20"), tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "VOC2012/annotations_detectron2/train_base") in msg
    assert "python -m harness prepare voc_20 --raw" in msg


def test_bad_raw_input_is_reported(tmp_path):
    raw = tmp_path / "VOC2012"
    (raw / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DataError, match="VOC train list is missing"):
        _quiet(get_info("voc_20"), raw, tmp_path / "d")
    (raw / "train.txt").write_text("2007_000009\n")
    (raw / "val.txt").write_text("")
    with pytest.raises(DataError, match=r"2 files named in .*train.txt are missing: .*2007_000009.jpg"):
        _quiet(get_info("voc_20"), raw, tmp_path / "d")
    with pytest.raises(DataError, match="no converter"):
        _quiet(get_info("ade_847"), raw, tmp_path / "d")


def test_parallel_conversion_equals_serial(tmp_path):
    info = get_info("synthetic_coco")
    from harness.data.synthetic import write_synthetic_raw

    raw = write_synthetic_raw("coco_stuff", tmp_path / "raw", n_train=70, n_val=2, size=24, seed=1)  # 2 chunks
    prepare_dataset(info, raw, tmp_path / "serial", workers=1, progress=False, log=lambda _: None)
    prepare_dataset(info, raw, tmp_path / "parallel", workers=2, progress=False, log=lambda _: None)
    for split in ("train", "val"):
        a, b = list_samples(info, split, tmp_path / "serial"), list_samples(info, split, tmp_path / "parallel")
        assert [s.stem for s in a] == [s.stem for s in b]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(_label(x.label), _label(y.label))
