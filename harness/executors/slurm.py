"""``--executor slurm``: submit a run's jobs through submitit, follow them, and name what failed.

The run directory keeps ``.slurm/.manifest.json`` (every job submitted: its cells, id, log files, the job it
waits for) and ``.slurm/logs/`` (submitit's folder), so ``harness status RUN`` can follow a run submitted with
``--no-wait`` from another shell, and re-running the same command submits only the cells that have neither a
finished record nor a job still queued. Stage jobs are one job array per resource request; the jobs that share
their stages are arrays that depend on them (``afterok``). Job states come from ``squeue`` and the records on
disk (no accounting database needed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..results import atomic_write_text
from .jobs import Job
from .resources import submitit_parameters
from .worker import CellJob, JobRequest

MANIFEST = Path(".slurm") / ".manifest.json"  # hidden: not a record for `harness table`
POLL_S = 2.0
NEVER = "DependencyNeverSatisfied"


def load_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"jobs": []}


def _save_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    (out_dir / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2))


def require_slurm() -> None:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise ConfigError("--executor slurm: `sbatch`/`squeue` are not on PATH; run on a Slurm login node (or "
                          "start the test cluster: .ci/slurm.sh start, then eval \"$(.ci/slurm.sh env)\").")


def queue() -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} of every job Slurm still holds (array tasks one per line)."""
    require_slurm()
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True)
    rows = (line.split("|") for line in done.stdout.splitlines() if line.count("|") == 2)
    return {job_id: (state, reason) for job_id, state, reason in rows}


def queued_cells(out_dir: Path) -> set[str]:
    """Cells of this run whose latest job is still queued or running."""
    held = {job_id for job_id, (state, reason) in queue().items()
            if state != "COMPLETING" and reason != NEVER}  # ending, or never to start: submit again
    return {cell for cell, job in latest_jobs(load_manifest(out_dir)).items() if job["job_id"] in held}


def submit(jobs: list[Job], requests: list[JobRequest], resources: list[dict[str, Any]], out_dir: Path,
           meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Submit ``jobs`` (stage jobs first, then their followers with ``afterok``); returns the manifest entries."""
    import submitit

    folder = out_dir / ".slurm" / "logs"
    entries: list[dict[str, Any] | None] = [None] * len(jobs)

    def submit_batch(indices: list[int], dependency: str | None) -> None:
        by_resources: dict[str, list[int]] = defaultdict(list)
        for index in indices:
            by_resources[json.dumps(resources[index], sort_keys=True)].append(index)
        for key, members in by_resources.items():
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=5)
            executor.update_parameters(job_name=f"harness-{meta['suite']}", **submitit_parameters(json.loads(key)),
                                       **({"dependency": dependency} if dependency else {}))
            with executor.batch():
                handles = [executor.submit(CellJob(), requests[i]) for i in members]
            for index, handle in zip(members, handles):
                entries[index] = {"job_id": handle.job_id, "cells": jobs[index].ids, "name": jobs[index].name,
                                  "stdout": str(handle.paths.stdout), "stderr": str(handle.paths.stderr),
                                  "after": dependency, "resources": resources[index],
                                  "submitted": time.time()}

    leaders = [i for i, job in enumerate(jobs) if job.after is None]
    submit_batch(leaders, None)
    followers: dict[int, list[int]] = defaultdict(list)
    for index, job in enumerate(jobs):
        if job.after is not None:
            followers[job.after].append(index)
    for leader, members in followers.items():
        submit_batch(members, f"afterok:{entries[leader]['job_id']}")
    manifest = load_manifest(out_dir)
    manifest.update(meta)
    manifest["jobs"] = [*manifest["jobs"], *entries]
    _save_manifest(out_dir, manifest)
    return entries  # type: ignore[return-value]


def latest_jobs(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{cell id: the last job submitted for it}."""
    return {cell: job for job in manifest["jobs"] for cell in job["cells"]}


def last_error_line(path: str) -> str:
    try:
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log: the job never started)"
    errors = [line for line in lines if "Error" in line or "error:" in line or "CANCELLED" in line]
    return (errors or lines or ["(empty log)"])[-1]
