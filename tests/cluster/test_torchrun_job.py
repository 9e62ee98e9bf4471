"""A cell asking for several GPUs runs under torchrun inside its job (issue 25). No Slurm needed, but two torch
ranks cost ~20 s, so it runs with the cluster tests (.ci/run), not in the default `pytest -q`."""

from pathlib import Path

import pytest
from suite_helpers import records_by_cell, write

from harness.__main__ import main
from harness.executors.worker import JobRequest, run_job

SUITE = """\
suite: exec
methods:
  - {name: strong, method: double-echo, options: {score: 80.0}}
  - {name: weak, method: double-echo, options: {score: 20.0}}
benchmarks:
  - {name: coco-stuff, task: double-task, options: {offset: 2.0}}
"""


@pytest.mark.slow
def test_a_cell_asking_for_two_gpus_runs_under_torchrun_in_its_job(tmp_path, monkeypatch):
    """The job of a cell with gpus_per_node: 2 runs `harness run` under torchrun (2 ranks; gloo on a CPU here)."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("PYTHONPATH", f"{root}:{root / 'tests'}")
    suite = write(tmp_path, SUITE)
    assert main(["run", str(suite), "--out", str(tmp_path / "seq"), "--no-progress", "--only", "coco-stuff/*"]) == 0
    request = JobRequest(suite_path=str(suite), profile="paper", overrides=(), out_dir=str(tmp_path / "ddp"),
                         cache_dir=str(tmp_path / "cache"), data_root=None, device="cpu", threads=1, force=False,
                         cell_ids=("coco-stuff/default/strong", "coco-stuff/default/weak"),
                         executor={"kind": "slurm", "resources": {"gpus_per_node": 2}})
    assert run_job(request) == {"coco-stuff/default/strong": "ran under torchrun", "coco-stuff/default/weak": "ran under torchrun"}
    seq, ddp = records_by_cell(tmp_path / "seq"), records_by_cell(tmp_path / "ddp")
    assert ddp.keys() == {"coco-stuff/default/strong", "coco-stuff/default/weak"}
    for cell, (status, metrics, kind) in ddp.items():
        assert (status, metrics, kind) == (*seq[cell][:2], "slurm")
