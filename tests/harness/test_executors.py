"""Executors (issue 25) without a cluster: the job plan, the resource checks, and `--executor local --jobs 2`
against a sequential run on the test doubles. The Slurm tests themselves are in tests/cluster."""

import json
import re

import pytest
from suite_helpers import records_by_cell, write

from harness.__main__ import main
from harness.errors import ConfigError
from harness.executors.jobs import plan_jobs
from harness.executors.resources import merged, sbatch_flags, submitit_parameters
from harness.runner import plan
from harness.suite import load_suite

SUITE = """\
suite: exec
methods:
  - double-echo
  - {name: strong, method: double-echo, options: {score: 80.0}}
  - {name: weak, method: double-echo, options: {score: 20.0}}
benchmarks:
  - {name: coco-stuff, task: double-task, options: {offset: 2.0}, slurm: {cpus_per_task: 2, mem_gb: 1.5}}
  - {name: speed, task: group-task}
settings: [a, b]
"""


def test_stage_jobs_come_first_and_speed_groups_are_one_job(tmp_path):
    jobs = plan_jobs(plan(load_suite(write(tmp_path, SUITE))))
    assert [(job.ids, job.after) for job in jobs] == [
        (["coco-stuff/a/double-echo"], None),
        (["coco-stuff/a/strong"], 0),
        (["coco-stuff/a/weak"], 0),
        (["coco-stuff/b/double-echo"], None),
        (["coco-stuff/b/strong"], 3),
        (["coco-stuff/b/weak"], 3),
        (["speed/a/double-echo", "speed/a/strong", "speed/a/weak"], None),
        (["speed/b/double-echo", "speed/b/strong", "speed/b/weak"], None),
    ]


def test_resources_merge_suite_then_command_line_and_map_to_sbatch(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    res = merged(suite.benchmarks[0].slurm, {"partition": "gpu", "timeout_min": 30, "account": None})
    assert res == {"gpus_per_node": 0, "cpus_per_task": 2, "timeout_min": 30, "mem_gb": 1.5, "partition": "gpu"}
    assert sbatch_flags(res) == ["--cpus-per-task=2", "--time=30", "--partition=gpu", "--mem=1536M"]
    assert submitit_parameters({**res, "gpus_per_node": 4}) == {
        "cpus_per_task": 2, "time": 30, "ntasks_per_node": 1, "nodes": 1, "partition": "gpu", "mem": "1536M",
        "gpus_per_node": 4}


@pytest.mark.parametrize("entry, message", [
    ("{cpus_per_task: 0}", "cpus_per_task must be at least 1"),
    ("{gpus: 1}", "unknown slurm resource 'gpus'"),
    ("{timeout_min: '10'}", "timeout_min must be an integer"),
    ("{mem_gb: true}", "mem_gb must be a number"),
    ("{partition: ' '}", "partition must not be empty"),
])
def test_bad_suite_resources_name_the_file_and_key(tmp_path, entry, message):
    path = write(tmp_path, SUITE.replace("slurm: {cpus_per_task: 2, mem_gb: 1.5}", f"slurm: {entry}"))
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert "benchmarks[0].slurm" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("flags, message", [
    (["--executor", "slurm", "--slurm-cpus", "0"], "--slurm-cpus: slurm resource cpus_per_task must be at least 1"),
    (["--no-wait"], "--no-wait apply to --executor slurm only"),
    (["--slurm-partition", "gpu"], "--slurm-\\* apply to --executor slurm only"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["--executor", "slurm", "--jobs", "2"], "--jobs applies to --executor local"),
])
def test_bad_executor_options_exit_2_before_anything_runs(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, SUITE)), "--out", str(out), "--no-progress", *flags]) == 2
    assert not out.exists()
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.slow
def test_local_jobs_2_gives_the_records_of_a_sequential_run(tmp_path):
    suite = write(tmp_path, SUITE)
    common = ["--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert main(["run", str(suite), "--out", str(tmp_path / "seq"), *common]) == 0
    assert main(["run", str(suite), "--out", str(tmp_path / "par"), "--jobs", "2", *common]) == 0
    seq, par = records_by_cell(tmp_path / "seq"), records_by_cell(tmp_path / "par")
    assert len(seq) == 12 and seq.keys() == par.keys()
    for cell in seq:
        assert par[cell][:2] == seq[cell][:2], cell
        assert (seq[cell][2], par[cell][2]) == (None, "local")
    # hiou follows the score option (the double's formula): 80 for strong, 20 for weak
    assert par["coco-stuff/b/strong"][1]["hiou"] == 80.0 and par["speed/a/weak"][1]["hiou"] == 20.0
    # re-running submits nothing: every cell has a finished record
    assert main(["run", str(suite), "--out", str(tmp_path / "par"), "--jobs", "2", *common]) == 0



def test_slurm_without_sbatch_and_status_without_a_run_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no squeue
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, SUITE)), "--out", str(out), "--executor", "slurm", "--no-progress"]) == 2
    assert "`sbatch`/`squeue` are not on PATH" in capsys.readouterr().err
    assert not (out / ".slurm").exists()
    assert main(["status", str(out)]) == 2
    assert "holds no Slurm run" in capsys.readouterr().err


def test_a_follower_of_a_requeued_stage_job_is_not_cancelled(tmp_path, monkeypatch):
    # Slurm may mark a follower DependencyNeverSatisfied for a moment when its stage job is killed and requeued
    # (seen in CI's requeue test): only once the stage job has left the queue is the follower given up on.
    from harness.executors import follow
    from harness.executors.slurm import MANIFEST, NEVER

    (tmp_path / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / MANIFEST).write_text(json.dumps({"jobs": [
        {"job_id": "245", "cells": ["b/s/stage"], "after": None, "submitted": 0.0, "stderr": "x.err"},
        {"job_id": "246", "cells": ["b/s/follower"], "after": "afterok:245", "submitted": 0.0, "stderr": "y.err"}]}))
    cancelled = []
    monkeypatch.setattr(follow.subprocess, "run", lambda cmd, **kw: cancelled.append(cmd))
    monkeypatch.setattr(follow, "queue", lambda: {"245": ("PENDING", "BeginTime"), "246": ("PENDING", NEVER)})
    snap = follow.snapshot(tmp_path, {})
    assert snap.state == {"b/s/stage": "pending", "b/s/follower": "pending"} and cancelled == []
    monkeypatch.setattr(follow, "queue", lambda: {"246": ("PENDING", NEVER)})  # the stage job is gone: final
    snap = follow.snapshot(tmp_path, {})
    assert snap.state["b/s/follower"] == "failed" and cancelled == [["scancel", "246"]]
    assert "never started: its stage job (afterok:245) failed" in snap.why["b/s/follower"]
