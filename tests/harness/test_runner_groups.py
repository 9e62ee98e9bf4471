"""Runner: cells a task groups run together (one record each), cells that will not run here are recorded up front
and not counted by the progress bar."""

import doubles
from suite_helpers import write

from harness.api import RunContext
from harness.results import load_record
from harness.runner import plan, record_path, run_suite
from harness.suite import load_suite

SUITE = """\
suite: grouped
methods:
  - double-echo
  - {name: strong, method: double-echo, options: {score: 80.0}}
  - {name: broken, method: double-echo, options: {fail: true}}
benchmarks:
  - {name: here, task: group-task}
  - {name: gpu-only, task: group-task, options: {here: false}}
settings: [a, b]
"""


def ctx(tmp_path, progress=False):
    return RunContext(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", progress=progress,
                      log=lambda *a: None)


def test_cells_of_one_benchmark_and_setting_run_as_one_group_with_a_record_each(tmp_path):
    doubles.GROUPS.clear()
    c = ctx(tmp_path)
    suite = load_suite(write(tmp_path, SUITE))
    summary = run_suite(suite, c)
    assert doubles.GROUPS == [["here/a/double-echo", "here/a/strong", "here/a/broken"],
                              ["here/b/double-echo", "here/b/strong", "here/b/broken"]]
    assert summary.count("ok") == 4 and len(summary.failed) == 2 and summary.count("not run") == 6
    by_id = {cell.id: load_record(record_path(c.out_dir, cell)) for cell in plan(suite)}
    assert by_id["here/a/strong"]["metrics"]["hiou"] == 80.0 and by_id["here/a/strong"]["status"] == "ok"
    assert by_id["here/a/broken"]["status"] == "failed" and "told to fail" in by_id["here/a/broken"]["error"]
    assert by_id["gpu-only/b/strong"]["status"] == "skipped"
    assert by_id["gpu-only/b/strong"]["error"] == "not on this machine"


def test_resume_and_only_work_per_cell_inside_a_group(tmp_path):
    doubles.GROUPS.clear()
    c = ctx(tmp_path)
    suite = load_suite(write(tmp_path, SUITE))
    run_suite(suite, c, only="here/a/*")
    run_suite(suite, c, only="here/a/*")  # the ok cells are recorded: only the failed one reruns, alone
    assert doubles.GROUPS == [["here/a/double-echo", "here/a/strong", "here/a/broken"], ["here/a/broken"]]


def test_progress_bar_counts_only_the_cells_that_will_run(tmp_path, capsys):
    run_suite(load_suite(write(tmp_path, SUITE)), ctx(tmp_path, progress=True))
    err = capsys.readouterr().err
    assert "6/6" in err and "/12" not in err  # 12 cells, 6 of them not for this machine


def test_speed_cells_of_one_benchmark_and_setting_form_one_group_unless_interleave_is_false():
    from harness.runner import _groups

    only = "vit-b16/*/deop,vit-b16/*/simbaseline"
    groups = _groups(plan(load_suite("suites/speed.yaml", profile="smoke"), only))
    assert [[c.id for c in g] for g in groups] == [
        ["vit-b16/as-published/simbaseline", "vit-b16/as-published/deop"],
        ["vit-b16/matched/simbaseline", "vit-b16/matched/deop"]]
    alone = load_suite("suites/speed.yaml", profile="smoke", overrides=["benchmarks.vit-b16.options.interleave=false"])
    assert [len(g) for g in _groups(plan(alone, only))] == [1, 1, 1, 1]
