"""Second sweep, cause 4: nothing wrong is recorded or shown as `ok`. Infinite or extreme options are refused
before anything runs; non-finite class scores fail the cell; a record whose headline metrics were edited is
refused by check, table and reference; a misspelt per-dataset block is an error; table rows match on options."""

import json
import math

import numpy as np
import pytest
import torch

from harness.api import MethodEnv, Vocabulary
from harness.data import get_info
from harness.errors import ConfigError
from harness.eval.metrics import compute_metrics
from harness.registries import METHODS
from harness.results import new_record, write_record
from harness.tables import build_frames, load_layout


@pytest.mark.parametrize("method, options, message", [
    ("sclip", {"tau": math.inf}, r"option tau=inf must be a finite number"),
    ("sclip", {"tau": 1e300}, r"option tau=1e\+300 must be <= 1000"),
    ("sclip", {"tau": math.nan}, r"option tau=nan must be a finite number"),
    ("naclip", {"sigma": 1e-200}, r"part attention .kk\+gauss.: option sigma=1e-200 must be >= 0.001"),
    ("naclip", {"sigma": 1e300}, r"option sigma=1e\+300 must be <= 1e\+06"),
    ("naclip", {"sigma": math.inf}, r"option sigma=inf must be a finite number"),
    ("proxyclip", {"beta": math.inf}, r"part attention .proxy.: option beta=inf must be a finite number"),
    ("proxyclip", {"gamma": math.nan}, r"part attention .proxy.: option gamma=nan must be a finite number"),
    ("sclip", {"per_dataset": {"voc21": {"tau": 65}}}, r"per_dataset.voc21: unknown dataset 'voc21'. Did you mean "
                                                       r"'voc_21'"),
    ("sclip", {"per_dataset": {"voc_21": {"tau": math.inf}}}, r"option tau=inf must be a finite number"),
])
def test_non_finite_or_extreme_options_are_config_errors(method, options, message):
    with pytest.raises(ConfigError, match=message):
        METHODS.get(method).spec(options).for_dataset("voc_21")


def test_tau_inf_in_a_suite_is_exit_2_before_any_work(cli, tmp_path):
    code, _, err = cli("run", "suites/training_free.yaml", "--profile", "smoke", "--dry-run",
                       "--set", "methods.sclip.options.tau=.inf")
    assert code == 2 and "option tau=inf must be a finite number" in err


def test_non_finite_class_scores_fail_the_prediction():
    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=None, device="cpu", progress=False,
                    log=lambda *a: None)
    fitted = METHODS.get("sclip").fit({"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 48,
                                       "crop": 32, "stride": 16}, env)
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    vocab = Vocabulary(["red disc", "grass"], dataset="synthetic_coco")
    assert torch.isfinite(fitted.segmenter.predict(image, vocab)).all()
    with torch.no_grad():  # damaged weights: one NaN in the last block's attention projection
        next(p for n, p in fitted.segmenter.clip.named_parameters() if n.endswith("out_proj.weight")).view(-1)[0] = \
            math.nan
    with pytest.raises(FloatingPointError, match="class scores of image 0 are not finite"):
        fitted.segmenter.predict(image, vocab)


def _segmentation_record(out, dataset="synthetic_coco", method="m", spec=None, benchmark="coco-stuff", seed=0):
    info = get_info(dataset)
    k = info.num_classes
    matrix = np.random.default_rng(seed).integers(0, 50, size=(k, k)) + np.eye(k, dtype=np.int64) * 100
    metrics = compute_metrics(matrix, unseen=info.unseen, class_names=list(info.class_names))
    cell = f"{benchmark}/default/{method}"
    record = new_record(suite="s", method=method, method_spec=spec or {}, benchmark=benchmark, dataset=dataset,
                        profile="smoke", metrics=metrics, miou_convention="d2-v0.6",
                        extra={"cell": cell, "setting": "default"})
    return write_record(out / f"{cell}.json", record, confusion=matrix)


@pytest.mark.parametrize("dataset, key", [("synthetic_coco", "hiou"), ("synthetic_coco", "miou_unseen"),
                                          ("synthetic_coco", "miou"), ("voc_21", "miou")])
def test_an_edited_headline_metric_is_refused_by_check_table_and_reference(cli, tmp_path, dataset, key):
    out = tmp_path / "runs"
    path = _segmentation_record(out, dataset)
    record = json.loads(path.read_text())
    record["metrics"][key] += 5.0  # the per-class IoU and the matrix are left as they were
    path.write_text(json.dumps(record))
    ref = tmp_path / "ref.yaml"
    ref.write_text("checks:\n- {cell: coco-stuff/default/m, metric: miou, value: 1, tolerance: 1, direction: higher}\n")
    for args in (["check", out, "--against", ref], ["table", out], ["reference", out, "--out", tmp_path / "r.yaml"]):
        code, _, err = cli(*args)
        assert code == 2 and f"gives {key} " in err and str(path) in err, (args, err)
    assert not (tmp_path / "r.yaml").exists()


def test_an_edited_hiou_of_an_uncatalogued_dataset_is_refused_too(cli, tmp_path):
    matrix = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]], dtype=np.int64)
    metrics = compute_metrics(matrix, unseen=[2], class_names=["a", "b", "c"])
    metrics["hiou"] = 99.0
    record = new_record(suite="s", method="m", method_spec={}, benchmark="b", dataset="mine", profile="p",
                        metrics=metrics, miou_convention="d2-v0.6", extra={"cell": "b/default/m"})
    write_record(tmp_path / "runs" / "b" / "default" / "m.json", record, confusion=matrix)
    code, _, err = cli("table", tmp_path / "runs")
    assert code == 2 and "is not the harmonic mean of its seen and unseen mIoU" in err


def test_a_naclip_run_with_pamr_is_not_printed_under_the_no_pamr_row(tmp_path):
    out = tmp_path / "runs"
    _segmentation_record(out, "voc_21", "naclip", {"plugin": "naclip", "pamr": True}, benchmark="voc-21")
    from harness.results import load_records

    frame = build_frames(load_records(out), load_layout("training_free"))["default"].set_index("Method")
    assert frame.loc["NACLIP v2 (repo, PAMR) *", "bg VOC-21"] != "-"
    assert "NACLIP (paper, no PAMR) *" not in frame.index  # no record of its settings: not shown at all
    _segmentation_record(out, "voc_21", "naclip", {"plugin": "naclip", "pamr": "maybe"}, benchmark="voc-21")
    frame = build_frames(load_records(out), load_layout("training_free"))["default"].set_index("Method")
    assert list(frame.index) == ["naclip (options unlike this table's naclip rows)"]  # its own row, never theirs
