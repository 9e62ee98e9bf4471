"""The training-free family's benchmarks: VOC-21, PC-60, COCO-Object and Cityscapes converters on raw files in
the official layouts (hand-made maps with hand-computed train ids, and the synthetic official downloads).

Expected ids come from the sources, not from the converter's table: VOC2012 SegmentationClass and
Pascal-Context keep 0 as background; SCLIP's ``cvt_coco_object.py`` sends raw (COCO id - 1) things to
their index + 1 among the 80 things, every key > 90 (stuff and 255) to 0; cityscapesScripts' labels.py gives
labelId 7 road -> 0, 8 sidewalk -> 1, 26 car -> 13, 33 bicycle -> 18 and 255 to every void id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import get_info, list_samples
from harness.data.info import DatasetInfo, Layout, SplitLayout
from harness.data.io import read_label
from harness.data.prepare import prepare_dataset
from harness.data.synthetic_official import voc_palette, write_official_raw
from harness.errors import DataError

IGN = 255
BENCHMARKS_WITH_BACKGROUND = {"voc_21", "pc_60", "coco_object"}
BENCHMARKS_WITHOUT = {"voc_20", "pc_59", "coco_stuff_171", "cityscapes", "ade_150"}


def _image(path: Path, h: int, w: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)


def _label(path: Path, values: list[int], palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.array([values, values], np.uint8)
    im = Image.fromarray(arr)  # uint8 -> mode "L"
    if palette:
        im = im.convert("P")
        im.putpalette(voc_palette())
    im.save(path)


def _read(path: Path) -> list[int]:
    return read_label(path)[0].tolist()


def _prepare(name: str, raw: Path, out: Path, log: list[str] | None = None) -> dict:
    sink = log.append if log is not None else (lambda _: None)
    return prepare_dataset(get_info(name), raw, out, workers=1, progress=False, log=sink)


def test_background_is_a_typed_field_of_every_benchmark():
    for name in BENCHMARKS_WITH_BACKGROUND:
        info = get_info(name)
        assert info.has_background and info.class_names[0] == "background", name
    for name in BENCHMARKS_WITHOUT:
        assert get_info(name).has_background is False, name
    counts = {n: get_info(n).official_count("val") for n in ("voc_21", "pc_60", "coco_object", "cityscapes")}
    assert counts == {"voc_21": 1449, "pc_60": 5105, "coco_object": 5000, "cityscapes": 500}
    assert [get_info(n).num_classes for n in ("voc_21", "pc_60", "coco_object", "cityscapes")] == [21, 60, 81, 19]


def test_a_background_entry_must_name_class_zero_background():
    layout = Layout(val=SplitLayout("x/img", "x/lab"))
    with pytest.raises(DataError, match="class 0 named 'background'"):
        DatasetInfo(name="bad", title="bad", class_names=("cat", "dog"), layout=layout, raw_format=None,
                    has_background=True)
    with pytest.raises(DataError, match="need has_background"):
        DatasetInfo(name="bad", title="bad", class_names=("cat", "dog"), layout=layout, raw_format="coco_stuff",
                    raw_ids=(1, 2), background_raw_ids=(3,))
    with pytest.raises(DataError, match=r"raw values \[2\]"):
        DatasetInfo(name="bad", title="bad", class_names=("background", "dog"), layout=layout,
                    raw_format="coco_stuff", raw_ids=(1, 2), background_raw_ids=(2, 3), has_background=True)


def test_voc_21_keeps_background_as_class_0_from_palette_pngs(tmp_path):
    raw, out = tmp_path / "VOC2012", tmp_path / "datasets"
    _image(raw / "JPEGImages/2007_000001.jpg", 2, 5)
    _image(raw / "JPEGImages/2007_000002.jpg", 2, 5)  # not in val.txt: not a sample
    _label(raw / "SegmentationClass/2007_000001.png", [0, 1, 5, 20, 255], palette=True)
    (raw / "ImageSets/Segmentation").mkdir(parents=True)
    (raw / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n")
    with Image.open(raw / "SegmentationClass/2007_000001.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]  # class 1 drawn in VOC's dark red
    log: list[str] = []
    manifest = _prepare("voc_21", raw, out, log)
    assert _read(out / "VOC2012/annotations_voc21/val/2007_000001.png") == [0, 1, 5, 20, IGN]
    assert manifest["splits"]["val"]["samples"] == 1 and manifest["splits"]["val"]["official_samples"] == 1449
    assert any("WARNING: voc_21 val has 1 samples, the official split has 1449" in line for line in log)
    assert [s.stem for s in list_samples(get_info("voc_21"), "val", out)] == ["2007_000001"]


def test_voc_21_asks_for_segmentationclass_not_the_aug_labels(tmp_path):
    raw = tmp_path / "VOC2012"
    _image(raw / "JPEGImages/2007_000001.jpg", 2, 5)
    _label(raw / "SegmentationClassAug/2007_000001.png", [0, 1, 5, 20, 255])
    (raw / "ImageSets/Segmentation").mkdir(parents=True)
    (raw / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n")
    with pytest.raises(DataError, match=r"SegmentationClass does not exist.*SegmentationClass, not "
                                        r"SegmentationClassAug"):
        _prepare("voc_21", raw, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"list is missing: looked for .*empty/ImageSets/Segmentation/val.txt"):
        _prepare("voc_21", tmp_path / "empty", tmp_path / "out")


def test_pc_60_keeps_background_and_pc_59_ignores_it_from_the_same_raw_files(tmp_path):
    raw, out = tmp_path / "VOC2010", tmp_path / "datasets"
    _image(raw / "JPEGImages/2008_000001.jpg", 2, 4)
    _image(raw / "JPEGImages/2008_000002.jpg", 2, 4)
    _label(raw / "SegmentationClassContext/2008_000001.png", [0, 1, 50, 59])
    _label(raw / "SegmentationClassContext/2008_000002.png", [0, 0, 0, 0])  # background only
    (raw / "ImageSets/SegmentationContext").mkdir(parents=True)
    (raw / "ImageSets/SegmentationContext/val.txt").write_text("2008_000001\n2008_000002\n")
    (raw / "ImageSets/SegmentationContext/train.txt").write_text("2008_000001\n")
    manifest = _prepare("pc_60", raw, out)
    assert _read(out / "pcontext/val/label60/2008_000001.png") == [0, 1, 50, 59]
    assert _read(out / "pcontext/val/label60/2008_000002.png") == [0, 0, 0, 0]
    assert manifest["splits"]["val"]["samples"] == 2  # a background-only image is a PC-60 sample
    assert get_info("pc_60").class_names[50] == "diningtable"  # raw 50 = PC-59's 50th class, "table"
    _prepare("pc_59", raw, out)
    assert _read(out / "pcontext/val/label/2008_000001.png") == [IGN, 0, 49, 58]
    assert not (out / "pcontext/val/label/2008_000002.png").exists()  # all ignore in PC-59


def test_coco_object_maps_stuff_and_unlabeled_to_background(tmp_path):
    raw, out = tmp_path / "coco", tmp_path / "datasets"
    # raw = COCO id - 1: 0 person, 12 stop sign (id 13), 89 toothbrush (id 90), 91 banner, 181 wood,
    # 255 unlabeled, 11 the unused id 12 (no such category)
    _image(raw / "val2017/000000000001.jpg", 2, 7)
    _label(raw / "stuffthingmaps/val2017/000000000001.png", [0, 12, 89, 91, 181, 255, 11])
    manifest = _prepare("coco_object", raw, out)
    assert _read(out / "coco/objectmaps_detectron2/val2017/000000000001.png") == [1, 12, 80, 0, 0, 0, IGN]
    info = get_info("coco_object")
    assert (info.class_names[1], info.class_names[12], info.class_names[80]) == ("person", "stop sign",
                                                                                 "toothbrush")
    assert manifest["splits"]["val"]["classes"] == 81
    assert not (out / "coco/objectmaps_detectron2/train2017").exists()  # val only


def test_cityscapes_maps_label_ids_to_the_19_train_ids_and_flattens_cities(tmp_path):
    raw, out = tmp_path / "cityscapes", tmp_path / "datasets"
    stem = "frankfurt_000000_000294"
    _image(raw / f"leftImg8bit/val/frankfurt/{stem}_leftImg8bit.png", 2, 9)
    #        unlabeled road sidewalk parking car bicycle caravan polegroup traffic sign
    values = [0, 7, 8, 9, 26, 33, 29, 18, 20]
    _label(raw / f"gtFine/val/frankfurt/{stem}_gtFine_labelIds.png", values)
    _prepare("cityscapes", raw, out)
    assert _read(out / f"cityscapes/annotations_detectron2/val/{stem}.png") == [IGN, 0, 1, IGN, 13, 18, IGN,
                                                                               IGN, 7]
    assert (out / f"cityscapes/images/val/{stem}.png").is_file()
    assert get_info("cityscapes").class_names[13] == "car"


def test_cityscapes_errors_name_the_archive_to_extract(tmp_path):
    raw = tmp_path / "cityscapes"
    _label(raw / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png", [7, 8])
    with pytest.raises(DataError, match=r"leftImg8bit/val does not exist.*leftImg8bit_trainvaltest.zip"):
        _prepare("cityscapes", raw, tmp_path / "out")
    (raw / "leftImg8bit/val/lindau").mkdir(parents=True)
    with pytest.raises(DataError, match=r"1 Cityscapes label maps have no image: .*lindau_000000_000019"
                                        r"_leftImg8bit.png"):
        _prepare("cityscapes", raw, tmp_path / "out")


@pytest.mark.parametrize("name", ["voc_21", "pc_60", "coco_object", "cityscapes"])
def test_unprepared_benchmark_error_names_path_and_prepare_command(tmp_path, name):
    with pytest.raises(DataError, match=rf"does not exist .*python -m harness prepare {name} --raw"):
        list_samples(get_info(name), "val", tmp_path)


@pytest.mark.parametrize("name", ["voc_21", "pc_60", "coco_object", "cityscapes"])
def test_synthetic_official_download_prepares_with_every_class_value_in_range(tmp_path, name):
    raw = write_official_raw(name, tmp_path / "raw", n_val=6, size=40, seed=1)
    if name == "voc_21":  # VOC's SegmentationClass PNGs are palettised
        with Image.open(next((raw / "SegmentationClass").glob("*.png"))) as im:
            assert im.mode == "P" and im.getpalette()[255 * 3:] == [224, 224, 192]
    manifest = _prepare(name, raw, tmp_path / "out")
    info = get_info(name)
    samples = list_samples(info, "val", tmp_path / "out")
    assert manifest["splits"]["val"]["samples"] == len(samples) == 6
    values = np.unique(np.concatenate([np.unique(read_label(s.label)) for s in samples]))
    # VOC's 255 borders and Cityscapes' void ids are ignored; PC-60 and COCO-Object label every pixel
    assert (IGN in values) == (name in ("voc_21", "cityscapes"))
    kept = values[values != IGN]
    assert kept.min() >= 0 and kept.max() < info.num_classes
    if info.has_background:
        assert 0 in kept  # every scene of these formats shows some background


def test_list_datasets_shows_the_new_benchmarks(capsys):
    from harness.__main__ import main

    assert main(["list", "datasets"]) == 0
    listed = set(capsys.readouterr().out.split())
    assert {"voc_21", "pc_60", "coco_object", "cityscapes", "voc_20", "pc_59", "coco_stuff_171", "ade_150"} <= listed
