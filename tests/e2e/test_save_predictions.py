"""run --save-predictions json|png, then `harness evaluate` on what it wrote: the same metrics and matrix."""

import json

import numpy as np
import pytest

from harness.__main__ import main
from harness.data import get_info, list_samples
from harness.results import load_confusion, load_record, load_records
from harness.tasks.common import dataset_root

TINY_TRAIN = ("defaults.train={prompts: {iters: 3, batch_size: 4}, proposals: {iters: 3, batch_size: 2, crop: 64, "
              "min_sizes: [64], max_size: 128}, head: {iters: 3, batch_size: 2, crop: 64, min_sizes: [64], "
              "max_size: 128}}")  # as tests/e2e/test_suites_end_to_end.py: a few steps of each stage


@pytest.mark.parametrize("fmt, bench, dataset", [("json", "coco-stuff", "synthetic_coco"),
                                                     ("png", "voc", "synthetic_voc")])
def test_saved_predictions_evaluate_to_the_records_numbers(tmp_path, capsys, fmt, bench, dataset):
    runs = tmp_path / "runs"
    data = dataset_root(get_info(dataset), tmp_path / "data", {"n_train": 8, "n_val": 4, "size": 64})  # the run's
    assert main(["run", "suites/smoke.yaml", "--out", str(runs), "--data-root", str(tmp_path / "data"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--only", f"{bench}/default/baseline",
                 "--set", TINY_TRAIN, "--set", "defaults.max_images=4",
                 "--set", "defaults.synthetic={n_train: 8, n_val: 4, size: 64}", "--save-predictions", fmt]) == 0
    record_file = runs / bench / "default" / "baseline.json"
    record = load_record(record_file)
    folder = runs / bench / "default" / "baseline.predictions"
    assert record["predictions"]["format"] == fmt and record["predictions"]["images"] == 4
    pred = folder / "sem_seg_predictions.json" if fmt == "json" else folder
    if fmt == "json":
        entries = json.loads(pred.read_text())
        images = {str(s.image) for s in list_samples(get_info(dataset), "val", data)}
        assert {e["file_name"] for e in entries} == images and len(record["predictions"]["sha256"]) == 64
        assert all(e["category_id"] in (1, 3, 7, 16, 20, 25, 92, 101, 118, 157, 178) for e in entries)
    else:
        assert len(list(folder.glob("*.png"))) == 4
    assert [r["method"] for r in load_records(runs)] == ["baseline"]  # the predictions are not records
    out = tmp_path / "external.json"
    capsys.readouterr()
    assert main(["evaluate", dataset, "--pred", str(pred), "--data-root", str(data), "--out", str(out)]) == 0
    assert "no entry" not in capsys.readouterr().out
    again = load_record(out)
    assert again["metrics"] == record["metrics"]
    np.testing.assert_array_equal(load_confusion(again), load_confusion(record))
    assert load_confusion(record).sum() > 0
