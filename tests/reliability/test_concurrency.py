"""Sweep item 1: two identical runs started at once share a stage cache; a stage is built once and never torn.

Processes are forked (cheap: torch is already imported) and start together on a barrier.
"""

import json
import multiprocessing as mp
import os
import time

import pytest
import torch

from harness.train.stages import run_stage

FORK = mp.get_context("fork")


def _build_and_load(cache, count_file, barrier, queue):
    def build(directory):
        with open(count_file, "a") as fh:  # one line per build, across processes
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # training takes a while: the other process asks for the stage meanwhile
        torch.save({"w": torch.arange(200_000, dtype=torch.float32)}, directory / "final.pt")
        return {"steps": 1}

    barrier.wait()
    try:
        directory, meta = run_stage(cache, "prompts", {"n": 1}, build, log=lambda *_: None)
        weights = torch.load(directory / "final.pt", map_location="cpu")["w"]
        queue.put(("ok", float(weights.sum()), meta["hash"]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}", None))


def test_two_processes_asking_for_one_stage_build_it_once_and_both_read_it(tmp_path):
    barrier, queue = FORK.Barrier(2), FORK.Queue()
    count_file = tmp_path / "builds.txt"
    procs = [FORK.Process(target=_build_and_load, args=(tmp_path / "cache", count_file, barrier, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert results[0][1:] == results[1][1:] == (float(torch.arange(200_000, dtype=torch.float32).sum()), results[0][2])
    builds = count_file.read_text().split()
    assert len(builds) == 1, f"the stage was built {len(builds)} times (by {builds}); the second must reuse it"
    done = json.loads((tmp_path / "cache" / "prompts" / results[0][2] / "done.json").read_text())
    assert done["steps"] == 1


TINY = ["--set", "defaults.train={prompts: {iters: 4, batch_size: 4}, proposals: {iters: 6, batch_size: 2, crop: 64,"
        " min_sizes: [64], max_size: 128}, head: {iters: 4, batch_size: 2, crop: 64, min_sizes: [64], max_size: 128}}",
        "--set", "defaults.max_images=2", "--set", "defaults.synthetic={n_train: 8, n_val: 4, size: 64}"]


def _run_cli(args, barrier, queue):
    import contextlib
    import io

    from harness.__main__ import main

    barrier.wait()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    queue.put((code, err.getvalue()[-2000:]))


@pytest.mark.slow
def test_two_identical_runs_at_once_both_succeed_with_identical_records(tmp_path):
    from harness.data import get_info
    from harness.data.synthetic import ensure_synthetic
    from harness.results import load_records
    from harness.tasks.common import dataset_root

    params = {"n_train": 8, "n_val": 4, "size": 64}
    info = get_info("synthetic_coco")
    ensure_synthetic(info.name, dataset_root(info, tmp_path / "data", params), **params)  # as a previous run left it
    args = ["run", "suites/smoke.yaml", "--only", "coco-stuff/*/baseline+", "--out", str(tmp_path / "runs"),
            "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", *TINY]
    barrier, queue = FORK.Barrier(2), FORK.Queue()
    procs = [FORK.Process(target=_run_cli, args=(args, barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [code for code, _ in results] == [0, 0], results
    (record,) = load_records(tmp_path / "runs")
    assert record["status"] == "ok" and record["metrics"]["pacc"] is not None
    for stage in ("prompts", "proposals", "head"):
        assert len(list((tmp_path / "cache" / stage).glob("*/done.json"))) == 1
