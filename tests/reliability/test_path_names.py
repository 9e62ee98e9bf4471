"""Second sweep, causes 3 and 5: every name that becomes a path component under --out is a plain name, checked
when the suite loads (nothing is written above --out, and no record is written where table/check/reference would
not look); the record finder follows symlinked folders, so what a run writes is what they read."""

import json

import numpy as np
import pytest

from harness.eval.metrics import compute_metrics
from harness.paths import path_name_problem
from harness.results import iter_record_files, load_records, new_record, write_record


def _suite(tmp_path, suite="s", method="deop", benchmark="coco-stuff", setting="default", profile="p"):
    q = json.dumps  # a JSON string is a double-quoted YAML string: escapes such as \t mean the same
    path = tmp_path / "s.yaml"
    path.write_text(f"suite: {q(suite)}\nmethods: [{{name: {q(method)}, method: deop}}]\n"
                    f"benchmarks: [{{name: {q(benchmark)}, task: segmentation, dataset: synthetic_coco}}]\n"
                    f"settings: [{{name: {q(setting)}}}]\nprofiles: {{{q(profile)}: {{}}}}\n")
    return path


BAD_NAMES = ["..", ".", "../..", "/abs", "a/b", "a\\b", ".quiet", "voc.predictions", "x" * 101, "a:b", "tab\there",
             " edge", "é" * 51]


@pytest.mark.parametrize("field", ["benchmark", "setting", "method", "suite"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_no_plain_path_component_is_exit_2_at_load(cli, tmp_path, field, name):
    code, _, err = cli("run", _suite(tmp_path, **{field: name}), "--out", tmp_path / "out" / "runs", "--dry-run")
    assert code == 2, err
    assert "choose a plain name" in err and path_name_problem(name) in err
    assert not (tmp_path / "out").exists()


def test_a_profile_named_like_a_path_is_refused(cli, tmp_path):
    code, _, err = cli("run", _suite(tmp_path, profile="../up"), "--dry-run")
    assert code == 2 and "profile name '../up' must not contain '/'" in err


@pytest.mark.parametrize("name", ["deop", "ps-gps-a0.5-a0.0", "baseline+cal", "a_b=1,c@2", "x" * 100, "é" * 50])
def test_plain_names_are_accepted(name):
    assert path_name_problem(name) is None


def _record(directory, cell):
    matrix = np.array([[3, 1], [0, 4]], dtype=np.int64)
    metrics = compute_metrics(matrix, class_names=["a", "b"])
    record = new_record(suite="s", method=cell.split("/")[-1], method_spec={}, benchmark=cell.split("/")[0],
                        dataset="synthetic_voc", profile="smoke", metrics=metrics, miou_convention="d2-v0.6",
                        extra={"cell": cell})
    return write_record(directory / f"{cell}.json", record, confusion=matrix)


def test_records_in_a_symlinked_folder_inside_out_are_found_once(tmp_path):
    out, elsewhere = tmp_path / "runs", tmp_path / "disk2"
    _record(out, "a/default/m")
    _record(elsewhere, "b/default/m")
    (out / "b").symlink_to(elsewhere / "b", target_is_directory=True)
    (elsewhere / "b" / "default" / "loop").symlink_to(out, target_is_directory=True)  # a cycle: walked once
    found = [p.relative_to(out).as_posix() for p in iter_record_files(out)]
    assert found == ["a/default/m.json", "b/default/m.json"]
    assert sorted(r["cell"] for r in load_records(out)) == ["a/default/m", "b/default/m"]
