import json

import doubles
import pytest
from suite_helpers import BASIC, write

from harness.api import RunContext
from harness.errors import ConfigError
from harness.results import load_record
from harness.runner import plan, record_path, run_suite
from harness.suite import load_suite

SUITE = BASIC.replace("table: null_table\n", "")


def ctx(tmp_path):
    return RunContext(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", progress=False, log=lambda *a: None)


def test_plan_expands_benchmark_setting_method(tmp_path):
    text = SUITE + "settings: [a, {name: b, method_options: {score: 1.0}}]\n"
    cells = plan(load_suite(write(tmp_path, text)))
    assert [c.id for c in cells] == [
        "coco-stuff/a/double-echo", "coco-stuff/a/strong", "coco-stuff/b/double-echo", "coco-stuff/b/strong",
        "voc/a/double-echo", "voc/a/strong", "voc/b/double-echo", "voc/b/strong"]
    assert cells[2].method_options == {"score": 1.0}  # the setting's method options apply to every row
    assert cells[3].method_options == {"score": 80.0}  # but a row's own options win
    assert cells[0].task_options == {"seed": 0, "offset": 2.0}


def test_run_writes_one_record_per_cell_with_the_method_results(tmp_path):
    c = ctx(tmp_path)
    summary = run_suite(load_suite(write(tmp_path, SUITE)), c)
    assert summary.count("ok") == 4 and not summary.failed
    rec = load_record(record_path(c.out_dir, plan(load_suite(write(tmp_path, SUITE)))[1]))
    assert rec["method"] == "strong" and rec["benchmark"] == "coco-stuff" and rec["dataset"] == "double-data"
    assert rec["metrics"]["hiou"] == 80.0 and rec["metrics"]["miou_seen"] == 82.0
    assert rec["method_spec"] == {"plugin": "double-echo", "score": 80.0, "fail": False, "speed": 10.0}
    assert rec["weights"] == {"clip": "random"} and rec["miou_convention"] == "d2-v0.6"
    assert rec["env"]["seed"] == 0 and rec["env"]["python"] and rec["env"]["torch"]
    assert rec["status"] == "ok" and rec["cell"] == "coco-stuff/default/strong"


def test_resume_skips_recorded_cells_and_force_recomputes(tmp_path):
    c = ctx(tmp_path)
    suite = load_suite(write(tmp_path, SUITE))
    doubles.CALLS.clear()
    run_suite(suite, c)
    assert len(doubles.CALLS) == 4
    doubles.CALLS.clear()
    summary = run_suite(suite, c)
    assert doubles.CALLS == [] and summary.count("skipped") == 4
    summary = run_suite(suite, c, force=True)
    assert len(doubles.CALLS) == 4 and summary.count("ok") == 4


def test_changed_cell_is_recomputed_not_reused(tmp_path):
    c = ctx(tmp_path)
    run_suite(load_suite(write(tmp_path, SUITE)), c)
    doubles.CALLS.clear()
    changed = load_suite(write(tmp_path, SUITE), overrides=["methods.strong.options.score=60"])
    run_suite(changed, c)
    assert sorted(doubles.CALLS) == ["coco-stuff/default/strong", "voc/default/strong"]
    rec = load_record(c.out_dir / "voc" / "default" / "strong.json")
    assert rec["metrics"]["hiou"] == 60.0


def test_failed_cell_is_recorded_and_the_others_still_run(tmp_path):
    text = SUITE.replace("options: {score: 80.0}", "options: {score: 80.0, fail: true}")
    c = ctx(tmp_path)
    summary = run_suite(load_suite(write(tmp_path, text)), c)
    assert summary.count("ok") == 2 and len(summary.failed) == 2
    bad = load_record(c.out_dir / "coco-stuff" / "default" / "strong.json")
    assert bad["status"] == "failed" and "RuntimeError: the double was told to fail" in bad["error"]
    assert "Traceback" in bad["traceback"]
    good = load_record(c.out_dir / "voc" / "default" / "double-echo.json")
    assert good["status"] == "ok"
    # a failed cell is retried on resume, the good ones are not
    doubles.CALLS.clear()
    run_suite(load_suite(write(tmp_path, SUITE)), c)
    assert sorted(doubles.CALLS) == ["coco-stuff/default/strong", "voc/default/strong"]


def test_bad_method_option_fails_before_any_cell_runs(tmp_path):
    text = SUITE.replace("options: {score: 80.0}", "options: {scor: 80.0}")
    doubles.CALLS.clear()
    with pytest.raises(ConfigError, match=r"methods entry 'strong'.*unknown option\(s\) \['scor'\]"):
        run_suite(load_suite(write(tmp_path, text)), ctx(tmp_path))
    assert doubles.CALLS == []
    text = SUITE.replace("options: {offset: 2.0}", "options: {offsett: 2.0}")
    with pytest.raises(ConfigError, match=r"benchmark 'coco-stuff'.*offsett"):
        run_suite(load_suite(write(tmp_path, text)), ctx(tmp_path))


def test_corrupt_record_is_moved_aside_and_recomputed(tmp_path):
    c = ctx(tmp_path)
    suite = load_suite(write(tmp_path, SUITE))
    run_suite(suite, c)
    path = c.out_dir / "voc" / "default" / "strong.json"
    path.write_text('{"schema": "deop-harness/record/v1", "metr')
    doubles.CALLS.clear()
    run_suite(suite, c)
    assert doubles.CALLS == ["voc/default/strong"]
    assert (path.parent / "strong.json.corrupt").exists()
    assert json.loads(path.read_text())["status"] == "ok"


def test_only_filters_cells_and_rejects_no_match(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    assert [c.id for c in plan(suite, only="voc/*")] == ["voc/default/double-echo", "voc/default/strong"]
    with pytest.raises(ConfigError, match="matches no cell"):
        plan(suite, only="ade/*")


def test_shared_method_options_reach_only_methods_that_take_them(tmp_path):
    """Proposal settings reach the DeOP family, window settings the training-free one (each plugin declares
    `option_names`); a row's own options always reach it; an option no method takes is an error, not ignored."""
    text = """\
suite: mixed
methods: [deop, {name: sclip-64, method: sclip, options: {tau: 50.0}}]
benchmarks:
  - {name: speed, task: speed, method_options: {clip_arch: tiny-vit-p16, proposals: {preset: smoke}, crop: 32}}
settings: [{name: s, method_options: {test_short_side: 48, short_side: 48}}]
"""
    deop, sclip = plan(load_suite(write(tmp_path, text)))
    assert deop.method_options == {"clip_arch": "tiny-vit-p16", "proposals": {"preset": "smoke"}, "test_short_side": 48}
    assert sclip.method_options == {"clip_arch": "tiny-vit-p16", "crop": 32, "short_side": 48, "tau": 50.0}
    with pytest.raises(ConfigError, match=r"method_options \['short_sid'\] are options of no method"):
        plan(load_suite(write(tmp_path, text.replace(", short_side: 48", ", short_sid: 48"))))
