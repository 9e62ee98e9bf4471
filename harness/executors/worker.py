"""What one job runs, wherever it runs: the runner on exactly the job's cells, then an ``executor`` entry in
each record it wrote (kind, job id, node, resources). A cell that asks for several GPUs runs under torchrun
inside the job (the DDP path of ``harness run``).

`CellJob` is submitit-checkpointable: when Slurm preempts the job or its time runs out, submitit calls
``checkpoint`` and requeues the same call; the training stage it was building resumes from its ``last.pt`` (the
stage cache keeps it), so the records it leaves are those of an uninterrupted run.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit


@dataclass(frozen=True)
class JobRequest:
    """Everything a worker needs to run its cells: picklable, with absolute paths."""

    suite_path: str
    profile: str
    overrides: tuple[str, ...]
    out_dir: str
    cache_dir: str
    data_root: str | None
    device: str
    threads: int | None
    force: bool
    cell_ids: tuple[str, ...]
    executor: dict[str, Any] = field(default_factory=dict)  # kind, resources (the job id is added at run time)

    @property
    def only(self) -> str:
        return ",".join(glob.escape(cell_id) for cell_id in self.cell_ids)


def _job_identity() -> dict[str, Any]:
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job_id = env.get("SLURM_JOB_ID", f"pid-{os.getpid()}")
    return {"job_id": job_id, "node": env.get("SLURMD_NODENAME", os.uname().nodename),
            "restarts": int(env.get("SLURM_RESTART_COUNT", "0"))}


def _annotate(paths: list[Path], executor: dict[str, Any]) -> None:
    from ..results import write_record

    for path in paths:
        if path.exists():
            record = json.loads(path.read_text())
            write_record(path, {**record, "executor": executor})  # its confusion file is already beside it


def _torchrun(request: JobRequest, gpus: int) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "harness", "run", request.suite_path, "--profile", request.profile, "--out", request.out_dir,
               "--cache-dir", request.cache_dir, "--device", request.device, "--only", request.only,
               "--no-progress", "--format", "csv"]
    for override in request.overrides:
        command += ["--set", override]
    if request.data_root:
        command += ["--data-root", request.data_root]
    if request.threads is not None:
        command += ["--threads", str(request.threads)]
    if request.force:
        command.append("--force")
    subprocess.run(command, check=False)  # failed cells are in their records; the exit code says no more


def run_job(request: JobRequest) -> dict[str, str]:
    """Run the request's cells; returns {cell id: status}."""
    from ..api import RunContext
    from ..runner import plan, record_path, run_suite
    from ..suite import load_suite

    suite = load_suite(request.suite_path, profile=request.profile, overrides=list(request.overrides))
    cells = plan(suite, request.only)
    paths = [record_path(Path(request.out_dir), cell) for cell in cells]
    executor = {**request.executor, **_job_identity()}
    print(f"harness job {executor['job_id']}: pid {os.getpid()} on {executor['node']}, cells {', '.join(request.cell_ids)}",
          flush=True)  # where to look (or what to kill) when a job hangs
    gpus = int(request.executor.get("resources", {}).get("gpus_per_node", 0))
    if gpus > 1:
        _torchrun(request, gpus)
        _annotate(paths, executor)
        return {cell.id: "ran under torchrun" for cell in cells}
    if request.threads is not None:
        import torch

        torch.set_num_threads(request.threads)
    ctx = RunContext(out_dir=Path(request.out_dir), cache_dir=Path(request.cache_dir),
                     data_root=Path(request.data_root) if request.data_root else None, device=request.device,
                     progress=False)
    summary = run_suite(suite, ctx, force=request.force, only=request.only)
    _annotate([o.path for o in summary.outcomes if o.status in ("ok", "failed")], executor)
    return {o.cell.id: o.status for o in summary.outcomes}


class CellJob(submitit.helpers.Checkpointable):
    """The Slurm job: `run_job`, requeued as is on preemption or timeout (the stage resumes from last.pt)."""

    def __call__(self, request: JobRequest) -> dict[str, str]:
        return run_job(request)
