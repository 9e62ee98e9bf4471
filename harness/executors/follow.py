"""Follow a Slurm run: each cell is done, running, pending or failed, from its record and ``squeue``.

A record written after its job was submitted says done (or failed, with the cell's error); a job Slurm no longer
holds that left no record failed outside its cells (killed, out of memory, cancelled): it is named with its log
file and the log's last error line. A job whose stage job failed would wait forever (``afterok`` never
satisfied): it is cancelled and reported as failed too. Re-running the `harness run` command resubmits exactly
the cells without a finished record.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .slurm import NEVER, POLL_S, last_error_line, latest_jobs, load_manifest, queue

GONE_GRACE_S = 10.0  # a record is written just before its job leaves the queue; give the file system a moment


@dataclass
class Snapshot:
    state: dict[str, str] = field(default_factory=dict)          # cell id -> done | running | pending | failed
    why: dict[str, str] = field(default_factory=dict)            # failed cell -> what and where

    def count(self, state: str) -> int:
        return sum(s == state for s in self.state.values())

    @property
    def finished(self) -> bool:
        return not (self.count("running") or self.count("pending"))

    def line(self) -> str:
        return ", ".join(f"{self.count(s)} {s}" for s in ("done", "running", "pending", "failed"))


def _record_state(out_dir: Path, cell: str, since: float) -> tuple[str | None, str]:
    benchmark, setting, method = cell.split("/", 2)
    path = out_dir / benchmark / setting / f"{method}.json"
    if not path.exists() or path.stat().st_mtime < since:
        return None, ""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None, ""  # being replaced: read it at the next poll
    if record.get("status") == "failed":
        return "failed", f"{record.get('error')} (record {path})"
    return "done", ""


def snapshot(out_dir: Path, gone_since: dict[str, float]) -> Snapshot:
    snap = Snapshot()
    held = queue()
    now = time.time()
    for cell, job in latest_jobs(load_manifest(out_dir)).items():
        state, why = _record_state(out_dir, cell, job["submitted"])
        if state is None and job["job_id"] in held:
            slurm_state, reason = held[job["job_id"]]
            # Final only once the stage job is gone: a stage job killed and requeued (preemption) can leave its
            # followers marked DependencyNeverSatisfied for a moment while it waits to run again.
            stage_job = (job.get("after") or "").rpartition(":")[2]
            if slurm_state == "PENDING" and reason == NEVER and stage_job not in held:
                subprocess.run(["scancel", job["job_id"]], capture_output=True)
                state, why = "failed", f"job {job['job_id']} never started: its stage job ({job['after']}) failed"
            else:
                state = "pending" if slurm_state == "PENDING" else "running"
        elif state is None:  # not queued and no record: ended without writing it
            gone = gone_since.setdefault(job["job_id"], now)
            if now - gone < GONE_GRACE_S:
                state = "running"
            else:
                state = "failed"
                why = (f"job {job['job_id']} ended without a record; log {job['stderr']}: "
                       f"{last_error_line(job['stderr'])}")
        snap.state[cell] = state
        if why:
            snap.why[cell] = why
    return snap


def follow(out_dir: Path, progress: bool, wait: bool = True, log=print) -> Snapshot:
    """Poll until every cell of the run's latest jobs is done or failed (``wait=False``: one look)."""
    gone_since: dict[str, float] = {}
    snap = snapshot(out_dir, gone_since)
    bar = tqdm(total=len(snap.state), unit="cell", desc="slurm", disable=not progress or not wait)
    reported: set[str] = set()
    while True:
        for cell, why in snap.why.items():
            if cell not in reported:
                reported.add(cell)
                (tqdm.write if progress else log)(f"cell {cell} failed: {why}")
        bar.n = snap.count("done") + snap.count("failed")
        bar.set_postfix_str(snap.line())
        bar.refresh()
        if snap.finished or not wait:
            break
        time.sleep(POLL_S)
        snap = snapshot(out_dir, gone_since)
    bar.close()
    return snap
