import subprocess
import sys

from suite_helpers import BASIC, write

from harness.__main__ import main

SUITE = BASIC.replace("table: null_table\n", "")


def test_run_then_table_then_check(tmp_path, capsys):
    suite = write(tmp_path, SUITE)
    out = tmp_path / "runs"
    assert main(["run", str(suite), "--out", str(out), "--no-progress", "--format", "md"]) == 0
    text = capsys.readouterr().out
    assert "4 cells: 4 ran, 0 skipped (already recorded), 0 failed" in text
    assert "| strong" in text and "80.0" in text
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0
    assert "4 skipped" in capsys.readouterr().out
    assert main(["table", str(out), "--format", "csv"]) == 0
    assert "default,strong,53.3,80.0,82.0,78.0,10.00" in capsys.readouterr().out
    ref = tmp_path / "ref.yaml"
    ref.write_text("checks:\n  - {cell: coco-stuff/default/strong, metric: hiou, value: 80, tolerance: 0.1, "
                   "direction: higher}\n")
    assert main(["check", str(out), "--against", str(ref)]) == 0
    ref.write_text("checks:\n  - {cell: coco-stuff/default/strong, metric: hiou, value: 85, tolerance: 0.1, "
                   "direction: higher}\n")
    assert main(["check", str(out), "--against", str(ref)]) == 1
    assert "FAIL: below 84.9" in capsys.readouterr().out


def test_failed_cell_gives_exit_1(tmp_path, capsys):
    suite = write(tmp_path, SUITE.replace("options: {score: 80.0}", "options: {score: 80.0, fail: true}"))
    assert main(["run", str(suite), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "FAILED coco-stuff/default/strong: RuntimeError: the double was told to fail" in capsys.readouterr().out


def test_bad_input_is_one_paragraph_and_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err
    suite = write(tmp_path, SUITE)
    assert main(["run", str(suite), "--set", "methods.strong.options.scor=1", "--out", str(tmp_path / "o")]) == 2
    assert "unknown option(s) ['scor']" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", str(suite), "--out", str(blocker / "sub")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err  # checked before anything runs
    assert main(["check", str(tmp_path), "--against", str(tmp_path / "missing.yaml")]) == 2


def test_dry_run_lists_cells(tmp_path, capsys):
    assert main(["run", str(write(tmp_path, SUITE)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "coco-stuff/default/double-echo" in out and "4 cells" in out


def test_dry_run_runs_the_preflight_of_a_run(tmp_path, capsys):
    """A dry-run that passes means the cells will start: it fails on what the run's preflight finds missing."""
    suite = write(tmp_path, SUITE.replace("{name: voc, task: double-task}",
                                          "{name: voc, task: double-task, options: {missing: the-weights.pt}}"))
    out = tmp_path / "runs"
    assert main(["run", str(suite), "--dry-run", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot run here; nothing was started" in err and "the-weights.pt is missing (cells: voc/" in err
    assert not out.exists()  # nothing written
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 2  # the run stops at the same place
    assert "the-weights.pt is missing" in capsys.readouterr().err


def test_help_is_fast_and_lists_every_command():
    # --help must not import torch (it would take seconds); run it in a fresh interpreter to see.
    code = "import sys, harness.__main__ as m; m.build_parser(); print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
    res = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for command in ("run", "table", "check", "list"):
        assert command in res.stdout
