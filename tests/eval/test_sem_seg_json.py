"""`harness evaluate DATASET --pred sem_seg_predictions.json`: detectron2's COCO-RLE predictions file.

The hand-made case is a synthetic_coco split of two (three) tiny images written here, whose metrics are
computed by hand in the comments; the rest use the session's prepared synthetic COCO-Stuff set.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hand_predictions import (
    GREEN_TRIANGLE,
    HAND_GT,
    RED_DISC,
    STRIPED_FLOOR,
    WAVY_WATER,
    hand_file,
    write_split,
)
from PIL import Image
from pycocotools import mask as mask_util

from harness.__main__ import main
from harness.data import get_info, list_samples
from harness.eval.prediction_files import PredictionWriter, detectron2_category_ids, encode_label_map
from harness.eval.predictions import score_prediction_dir
from harness.eval.sem_seg_json import rle_string_counts, score_prediction_json
from harness.results import load_record

INFO = get_info("synthetic_coco")
# pycocotools 2.0.x's decode trips numpy 2's copy= deprecation (harness.eval.sem_seg_json silences it the same way)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def test_hand_made_two_image_file_gives_hand_computed_metrics(tmp_path, capsys):
    root = tmp_path / "data"
    write_split(root, HAND_GT)
    pred = tmp_path / "inference" / "sem_seg_predictions.json"
    pred.parent.mkdir()
    hand_file(pred)
    out = tmp_path / "rec.json"
    assert main(["evaluate", "synthetic_coco", "--pred", str(pred), "--data-root", str(root), "--out", str(out)]) == 0
    record = load_record(out)
    matrix = np.load(out.with_name("rec.confusion.npy"))
    expected = np.zeros((11, 11), np.int64)
    expected[RED_DISC, RED_DISC], expected[RED_DISC, STRIPED_FLOOR], expected[STRIPED_FLOOR, STRIPED_FLOOR] = 2, 1, 2
    expected[GREEN_TRIANGLE, GREEN_TRIANGLE], expected[GREEN_TRIANGLE, WAVY_WATER] = 1, 1
    expected[WAVY_WATER, WAVY_WATER] = 2
    np.testing.assert_array_equal(matrix, expected)
    m = record["metrics"]
    # IoU: disc 2/(3+2-2) = 2/3, floor 2/(2+3-2) = 2/3, triangle 1/(2+1-1) = 1/2, water 2/(2+3-2) = 2/3
    assert m["miou"] == pytest.approx(100 * (2 / 3 + 2 / 3 + 1 / 2 + 2 / 3) / 4)  # 62.5
    assert m["miou_seen"] == pytest.approx(200 / 3)
    assert m["miou_unseen"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)  # 58.33
    assert m["hiou"] == pytest.approx(70000 / 1125)  # 2 * 66.67 * 58.33 / 125 = 62.22
    assert m["pacc"] == pytest.approx(700 / 9)  # 7 of 9 labelled pixels
    assert m["per_class_iou"]["blue square"] is None  # neither present nor predicted
    assert record["method"] == "external" and record["weights"]["tag"] == "external predictions"
    assert record["weights"]["sha256"] == record["method_spec"]["sha256"] and len(record["weights"]["sha256"]) == 64
    assert record["weights"]["file"] == str(pred.resolve()) and record["missing_images"] == 0


def test_a_missing_image_is_scored_as_misses_counted_and_listed(tmp_path, capsys):
    root = tmp_path / "data"
    write_split(root, {**HAND_GT, "c": [[RED_DISC, STRIPED_FLOOR]]})  # c has no entry in the file
    pred = tmp_path / "preds.json"
    hand_file(pred)
    out = tmp_path / "rec.json"
    assert main(["evaluate", "synthetic_coco", "--pred", str(pred), "--data-root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 of 3 images have no entry" in printed and ": c (all listed in the record)" in printed
    record = load_record(out)
    assert record["missing_images"] == 1 and record["missing_image_names"] == ["c"] and record["n_images"] == 3
    matrix = np.load(out.with_name("rec.confusion.npy"))
    assert matrix.shape == (11, 12) and matrix[RED_DISC, 11] == 1 and matrix[STRIPED_FLOOR, 11] == 1
    # disc 2/(4+2-2) = 1/2, floor 2/(3+3-2) = 1/2, triangle 1/2, water 2/3; pAcc 7 of 11
    assert record["metrics"]["miou"] == pytest.approx(100 * (1 / 2 + 1 / 2 + 1 / 2 + 2 / 3) / 4)
    assert record["metrics"]["pacc"] == pytest.approx(700 / 11)


def _png_predictions(coco_root, folder):
    """Ground truth with ignore -> 'blue square' and every 'red disc' pixel called 'wavy water' (unseen)."""
    folder.mkdir()
    for s in list_samples(INFO, "val", coco_root):
        gt = np.array(Image.open(s.label)).astype(np.int64)
        pred = np.where(gt == 255, 1, gt)
        pred[pred == RED_DISC] = WAVY_WATER
        Image.fromarray(pred.astype(np.uint8)).save(folder / f"{s.stem}.png")
    return folder


def test_png_to_json_and_back_gives_identical_confusion_matrices(coco_root, tmp_path):
    png_dir = _png_predictions(coco_root, tmp_path / "png")
    from_png = score_prediction_dir(INFO, png_dir, root=coco_root)
    writer = PredictionWriter("json", tmp_path / "json", INFO)
    for s in list_samples(INFO, "val", coco_root):
        writer.add(f"/elsewhere/val2017/{s.stem}.jpg", np.array(Image.open(png_dir / f"{s.stem}.png")))
    summary = writer.close()
    entries = json.loads((tmp_path / "json" / "sem_seg_predictions.json").read_text())
    assert summary["images"] == len(list_samples(INFO, "val", coco_root)) and len(summary["sha256"]) == 64
    from_json = score_prediction_json(INFO, summary["path"], root=coco_root)
    np.testing.assert_array_equal(from_json.matrix, from_png.matrix)
    assert from_json.missing_images == () and from_json.matrix.sum() > 0
    # back: paint every entry into a label map again (pycocotools decode, COCO id -> train id)
    to_train = {cid: t for t, cid in enumerate(detectron2_category_ids(INFO))}
    back_dir = tmp_path / "back"
    back_dir.mkdir()
    maps: dict[str, np.ndarray] = {}
    for e in entries:
        mask = mask_util.decode({"size": e["segmentation"]["size"], "counts": e["segmentation"]["counts"].encode()})
        stem = e["file_name"].rsplit("/", 1)[-1][:-4]
        maps.setdefault(stem, np.full(mask.shape, 255, np.uint8))[mask.astype(bool)] = to_train[e["category_id"]]
    for stem, label in maps.items():
        np.testing.assert_array_equal(label, np.array(Image.open(png_dir / f"{stem}.png")))
        Image.fromarray(label).save(back_dir / f"{stem}.png")
    np.testing.assert_array_equal(score_prediction_dir(INFO, back_dir, root=coco_root).matrix, from_png.matrix)


def test_coco_stuff_category_ids_are_the_coco_ids():
    full = get_info("coco_stuff_171")
    ids = detectron2_category_ids(full)
    assert len(ids) == 171 and ids[0] == 1 and full.class_names[0] == "person"
    stuff = [i for i in ids if i >= 92]
    assert stuff == list(range(92, 183))  # 91 stuff classes, ids 92-182, in catalog order
    assert len([i for i in ids if i <= 91]) == 80 and 12 not in ids and 83 not in ids  # unused thing ids
    assert detectron2_category_ids(INFO) == (1, 3, 7, 16, 20, 25, 92, 101, 118, 157, 178)
    assert detectron2_category_ids(get_info("voc_20")) == tuple(range(20))
    assert detectron2_category_ids(get_info("ade_150")) == tuple(range(150))


def test_writer_maps_train_ids_to_coco_ids_on_the_synthetic_coco_stuff_format(tmp_path):
    label = np.array([[STRIPED_FLOOR, STRIPED_FLOOR], [WAVY_WATER, RED_DISC]])
    entries = encode_label_map(label, "x/val2017/000000000001.jpg", detectron2_category_ids(INFO))
    assert [e["category_id"] for e in entries] == [1, 92, 178]  # disc, striped floor (stuff), wavy water (stuff)
    floor = mask_util.decode({"size": [2, 2], "counts": entries[1]["segmentation"]["counts"].encode()})
    np.testing.assert_array_equal(floor, [[1, 1], [0, 0]])
    assert entries[1]["segmentation"]["size"] == [2, 2]


def test_rle_string_parser_matches_pycocotools():
    rng = np.random.default_rng(0)
    mask = rng.random((37, 29)) < 0.3
    rle = mask_util.encode(np.asfortranarray(mask[:, :, None].astype(np.uint8)))[0]
    runs = rle_string_counts(rle["counts"].decode())
    assert sum(runs) == 37 * 29
    assert np.repeat(np.arange(len(runs)) % 2, runs).reshape(29, 37).T.astype(bool).tolist() == mask.tolist()
    for bad in ("0P", "0Pl~", "0P l4"):
        with pytest.raises(ValueError):
            rle_string_counts(bad + "`")  # '`' (96) continues a run; trailing: the string ends inside a run


def test_the_no_prediction_column_counts_as_misses_only():
    from harness.eval import compute_metrics

    # class 0: 2 right, 1 pixel without prediction; class 1: 1 right. IoU 2/(3+2-2) and 1/1; pAcc 3 of 4
    metrics = compute_metrics(np.array([[2, 0, 1], [0, 1, 0]]), class_names=("a", "b"))
    assert metrics["per_class_iou"] == pytest.approx({"a": 200 / 3, "b": 100.0})
    assert metrics["miou"] == pytest.approx(250 / 3) and metrics["pacc"] == pytest.approx(75.0)
    with pytest.raises(ValueError, match="K x K"):
        compute_metrics(np.zeros((2, 4), np.int64))
