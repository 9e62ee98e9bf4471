"""`python -m harness evaluate` end to end on a synthetic dataset prepared by the real converter."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from harness.__main__ import main
from harness.data import get_info, list_samples
from harness.eval import compute_metrics
from harness.results import load_record

INFO = get_info("synthetic_coco")


def _predictions(coco_root, tmp_path, corrupt=None):
    """Ground truth turned into predictions: ignore -> class 0, and every 'red disc' pixel called 'blue square'."""
    pred_dir = tmp_path / "preds"
    pred_dir.mkdir()
    matrix = np.zeros((INFO.num_classes,) * 2, np.int64)
    for s in list_samples(INFO, "val", coco_root):
        gt = np.array(Image.open(s.label)).astype(np.int64)
        pred = np.where(gt == 255, 0, gt)
        pred[pred == 0] = 1
        valid = gt != 255
        np.add.at(matrix, (gt[valid], pred[valid]), 1)
        Image.fromarray(pred.astype(np.uint8)).save(pred_dir / f"{s.stem}.png")
    return pred_dir, matrix


def test_evaluate_writes_a_record_with_metrics_and_the_matrix(coco_root, tmp_path, capsys):
    pred_dir, matrix = _predictions(coco_root, tmp_path)
    (pred_dir / "not_in_the_dataset.png").write_bytes((pred_dir / next(pred_dir.iterdir()).name).read_bytes())
    out = tmp_path / "rec" / "ext.json"
    assert main(["evaluate", "synthetic_coco", "--pred", str(pred_dir), "--data-root", str(coco_root),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 PNGs in" in printed and "hIoU" in printed
    record = load_record(out)
    assert record["miou_convention"] == "d2-v0.6" and record["method"] == "external"
    assert record["dataset"] == record["benchmark"] == "synthetic_coco"
    np.testing.assert_array_equal(np.load(out.with_name("ext.confusion.npy")), matrix)
    expected = compute_metrics(matrix, unseen=INFO.unseen, class_names=INFO.class_names)
    got = dict(record["metrics"])
    assert got.pop("per_class_iou") == pytest.approx(expected.pop("per_class_iou"))
    assert got == pytest.approx(expected)
    assert record["metrics"]["per_class_iou"]["red disc"] == 0.0  # every red disc pixel was mislabelled
    assert record["metrics"]["miou"] < 100 and set(record["metrics"]) >= {"miou_seen", "miou_unseen", "hiou"}


def test_gt_present_convention_is_recorded(coco_root, tmp_path):
    pred_dir, matrix = _predictions(coco_root, tmp_path)
    out = tmp_path / "gp.json"
    assert main(["evaluate", "synthetic_coco", "--pred", str(pred_dir), "--data-root", str(coco_root),
                 "--out", str(out), "--convention", "gt-present"]) == 0
    record = load_record(out)
    assert record["miou_convention"] == "gt-present"
    assert record["metrics"]["miou"] == pytest.approx(
        compute_metrics(matrix, unseen=INFO.unseen, convention="gt-present")["miou"])


def test_bad_predictions_are_named_with_counts(coco_root, tmp_path, capsys):
    pred_dir, _ = _predictions(coco_root, tmp_path)
    files = sorted(pred_dir.glob("*.png"))
    args = ["evaluate", "synthetic_coco", "--pred", str(pred_dir), "--data-root", str(coco_root),
            "--out", str(tmp_path / "never.json")]

    small = np.array(Image.open(files[0]))[:-2]
    Image.fromarray(small).save(files[0])
    out_of_range = np.array(Image.open(files[1]))
    out_of_range[0, 0] = INFO.num_classes + 3
    Image.fromarray(out_of_range).save(files[1])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"1 predictions differ in size from the ground truth: {files[0].name}" in err
    assert f"1 predictions hold values outside 0..{INFO.num_classes - 1}: {files[1].name} (max 14)" in err

    files[2].unlink()
    files[3].unlink()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"2 of {len(files)} predictions are missing" in err and files[2].name in err
    assert not (tmp_path / "never.json").exists()


def test_missing_dataset_says_which_prepare_command(tmp_path, capsys):
    pred = tmp_path / "p"
    pred.mkdir()
    assert main(["evaluate", "voc_20", "--pred", str(pred), "--data-root", str(tmp_path / "d")]) == 2
    assert "python -m harness prepare voc_20 --raw" in capsys.readouterr().err


def test_prepare_command_with_synthetic_download(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "data"
    assert main(["prepare", "synthetic_voc", "--raw", str(raw), "--out", str(out), "--synthetic",
                 "--n-train", "4", "--n-val", "2", "--size", "40", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic_voc val: 2 samples, 8 classes" in printed and "verified" in printed
    shutil.rmtree(raw / "SegmentationClassAug")
    assert main(["prepare", "synthetic_voc", "--raw", str(raw), "--out", str(tmp_path / "again"),
                 "--workers", "1"]) == 2
    assert "missing" in capsys.readouterr().err
