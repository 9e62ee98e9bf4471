"""Sweep items 3-4 end to end: damaged evidence (confusion matrices) and a damaged stage cache, on a real tiny run.
For each fault: table and check refuse it with a message naming the file (exit 2), and a re-run repairs it with
the same metrics as the undamaged run (nothing lost, nothing silently wrong)."""

import json
import shutil

import numpy as np
import pytest

from harness.results import load_record

TRAIN = ("defaults.train={prompts: {iters: 4, batch_size: 4}, proposals: {iters: 6, batch_size: 2, crop: 64, "
         "min_sizes: [64], max_size: 128}, head: {iters: 4, batch_size: 2, crop: 64, min_sizes: [64], max_size: 128}}")
CELL = "coco-stuff/default/baseline+"


def _args(root, *extra):
    return ["run", "suites/smoke.yaml", "--only", CELL, "--out", root / "runs", "--data-root", root / "data",
            "--cache-dir", root / "cache", "--no-progress", "--set", TRAIN, "--set", "defaults.max_images=2",
            "--set", "defaults.synthetic={n_train: 8, n_val: 4, size: 64}", *extra]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    from harness.__main__ import main

    root = tmp_path_factory.mktemp("faults")
    assert main([str(a) for a in _args(root)]) == 0
    return root


@pytest.fixture
def run_copy(base_run, tmp_path):
    """A private copy of the tiny run (records, cache, data) that a test may damage."""
    root = base_run
    for part in ("runs", "cache", "data"):
        shutil.copytree(root / part, tmp_path / part, symlinks=True)
    record_path = tmp_path / "runs" / "coco-stuff" / "default" / "baseline+.json"
    return tmp_path, record_path, load_record(record_path)


def _damage_matrix(path, how):
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:60])
    else:  # a matrix of the right size that does not give the record's metrics
        matrix = np.load(path)
        matrix[0, 0] += 5
        np.save(path, matrix)


@pytest.mark.parametrize("how", ["delete", "truncate", "edit"])
def test_a_damaged_confusion_matrix_is_refused_then_recomputed_on_resume(cli, run_copy, how):
    root, record_path, before = run_copy
    matrix_path = record_path.with_name("baseline+.confusion.npy")
    original = np.load(matrix_path)
    _damage_matrix(matrix_path, how)
    for args in (["table", root / "runs"], ["check", root / "runs", "--against", "results/reference/smoke-cpu.yaml"]):
        code, _, err = cli(*args)
        assert code == 2 and str(matrix_path) in err and "Re-run its suite" in err, err
    code, out, err = cli(*_args(root))
    assert code == 0, err
    assert f"record {record_path}" in out + err and "the cell is recomputed" in out + err
    assert "1 ran" in out
    after = load_record(record_path)
    assert after["metrics"] == before["metrics"]  # stages reused: identical numbers
    assert np.array_equal(np.load(matrix_path), original)
    assert cli("table", root / "runs")[0] == 0


@pytest.mark.parametrize("stage, name, how", [("head", "final.pt", "truncate"), ("proposals", "final.pt", "delete"),
                                              ("prompts", "done.json", "truncate")])
def test_a_corrupt_stage_cache_is_named_and_rebuilt_with_identical_results(cli, run_copy, stage, name, how):
    root, record_path, before = run_copy
    (directory,) = [d for d in (root / "cache" / stage).iterdir() if d.is_dir()]
    target = directory / name
    if how == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    code, out, err = cli(*_args(root, "--force"))
    assert code == 0, err
    assert f"the cached stage {directory} is corrupt" in out and str(target) in out and "rebuilt" in out
    after = load_record(record_path)
    assert after["status"] == "ok" and after["metrics"] == before["metrics"]  # bit-identical on one thread
    assert json.loads((directory / "done.json").read_text())["hash"] == directory.name


def test_scientific_notation_trains(cli, run_copy):
    root, record_path, _ = run_copy
    code, out, err = cli(*_args(root, "--set", "defaults.train.head.lr=1e-3"))
    assert code == 0, out + err
    record = load_record(record_path)
    assert record["status"] == "ok" and record["task_options"]["train"]["head"]["lr"] == 0.001
    assert record["stages"]["head"]["schedule"]["lr"] == 0.001 and record["stages"]["head"]["cached"] is False


def test_ctrl_c_exits_130_keeps_finished_records_and_resumes(cli, tmp_path, monkeypatch):
    import doubles
    from suite_helpers import BASIC, write

    suite = write(tmp_path, BASIC.replace("table: null_table\n", ""))
    real_run = doubles.DOUBLE_TASK.run
    calls = []

    def interrupted(cell, ctx):
        calls.append(cell.id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(cell, ctx)

    monkeypatch.setattr(doubles.DOUBLE_TASK, "run", interrupted)
    code, _, err = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 130 and "re-run the same command to resume" in err
    (kept,) = list((tmp_path / "out").rglob("*.json"))
    assert load_record(kept)["status"] == "ok"
    monkeypatch.setattr(doubles.DOUBLE_TASK, "run", real_run)
    code, out, _ = cli("run", suite, "--out", tmp_path / "out", "--no-progress")
    assert code == 0 and "3 ran, 1 skipped (already recorded)" in out
