import json

import pytest

from harness.check import run_check
from harness.errors import RecordError
from harness.results import new_record, write_record


def _write(dir_, cell, metrics=None, speed=None, status="ok"):
    bench, setting, method = cell.split("/")
    record = new_record(suite="s", method=method, method_spec={}, benchmark=bench, dataset=None, profile="smoke",
                        metrics=metrics, speed=speed, status=status, error="boom" if status == "failed" else None,
                        extra={"cell": cell, "setting": setting})
    write_record(dir_ / bench / setting / f"{method}.json", record)


def _reference(tmp_path, checks):
    path = tmp_path / "ref.yaml"
    path.write_text(json.dumps({"reference": "t", "checks": checks}))  # JSON is YAML
    return path


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "runs"
    _write(out, "coco/default/deop", metrics={"hiou": 30.0})
    _write(out, "speed/default/deop", speed={"fps": 8.0})
    _write(out, "speed/default/simbaseline", speed={"fps": 2.0})
    return out


def test_all_within_tolerance_passes(tmp_path, results):
    ref = _reference(tmp_path, [
        {"cell": "coco/default/deop", "metric": "hiou", "value": 31.0, "tolerance": 1.0, "direction": "higher"},
        {"cell": "speed/default/deop", "over": "speed/default/simbaseline", "metric": "fps", "value": 4.5,
         "tolerance": 0.5, "direction": "higher"},
        {"cell": "coco/default/deop", "metric": "hiou", "value": 30.0, "tolerance": 0.0, "direction": "equal"}])
    code, text = run_check(results, ref)
    assert code == 0 and "3 of 3 reference figures hold" in text


@pytest.mark.parametrize("check,reason", [
    ({"cell": "coco/default/deop", "metric": "hiou", "value": 31.5, "tolerance": 1.0, "direction": "higher"},
     "below 30.5"),
    ({"cell": "coco/default/deop", "metric": "hiou", "value": 28.0, "tolerance": 1.0, "direction": "lower"},
     "above 29"),
    ({"cell": "speed/default/deop", "over": "speed/default/simbaseline", "metric": "fps", "value": 5.0,
      "tolerance": 0.5, "direction": "higher"}, "below 4.5"),
    ({"cell": "coco/default/baseline", "metric": "hiou", "value": 1.0, "tolerance": 1.0, "direction": "higher"},
     "no record for cell coco/default/baseline"),
    ({"cell": "coco/default/deop", "metric": "pacc", "value": 1.0, "tolerance": 1.0, "direction": "higher"},
     "has no metric 'pacc'"),
])
def test_regressions_and_missing_figures_fail(tmp_path, results, check, reason):
    code, text = run_check(results, _reference(tmp_path, [check]))
    assert code == 1 and reason in text and "0 of 1 reference figures hold" in text


def test_failed_cell_fails_the_check(tmp_path, results):
    _write(results, "coco/default/broken", metrics={"hiou": 99.0}, status="failed")
    code, text = run_check(results, _reference(tmp_path, [
        {"cell": "coco/default/broken", "metric": "hiou", "value": 1.0, "tolerance": 1.0, "direction": "higher"}]))
    assert code == 1 and "failed: boom" in text


def test_unusable_input_raises(tmp_path, results):
    with pytest.raises(RecordError, match="does not exist"):
        run_check(results, tmp_path / "missing.yaml")
    with pytest.raises(RecordError, match="non-empty 'checks'"):
        run_check(results, _reference(tmp_path, []))
    bad = {"cell": "c", "metric": "m", "value": "x", "tolerance": 1, "direction": "higher"}
    with pytest.raises(RecordError, match="value must be a number"):
        run_check(results, _reference(tmp_path, [bad]))
    with pytest.raises(RecordError, match="direction must be one of"):
        run_check(results, _reference(tmp_path, [{**bad, "value": 1, "direction": "up"}]))
    (tmp_path / "empty").mkdir()
    good = {"cell": "c", "metric": "m", "value": 1, "tolerance": 1, "direction": "higher"}
    with pytest.raises(RecordError, match="holds no records"):
        run_check(tmp_path / "empty", _reference(tmp_path, [good]))


def test_reference_with_a_noted_ratio_round_trips_and_names_the_claim(tmp_path, results):
    from harness.check import build_reference, load_reference
    from harness.errors import ConfigError

    text = build_reference(results, ["hiou"], 1.0, "higher",
                           ["speed/default/deop:speed/default/simbaseline:fps:1.5:higher:one pass: 4x, paper 3.9x"],
                           "t")
    path = tmp_path / "made.yaml"
    path.write_text(text)
    _, checks = load_reference(path)
    ratio = next(c for c in checks if c.over)
    assert (ratio.value, ratio.tolerance, ratio.note) == (4.0, 1.5, "one pass: 4x, paper 3.9x")
    assert run_check(results, path)[0] == 0
    _write(results, "speed/default/simbaseline", speed={"fps": 4.0})  # the speed-up falls to 2x
    code, report = run_check(results, path)
    assert code == 1 and "below 2.5" in report and "one pass: 4x, paper 3.9x" in report
    with pytest.raises(ConfigError, match="not a number"):
        build_reference(results, [], 1.0, "higher", ["speed/default/deop:speed/default/simbaseline:fps:x"], "t")
