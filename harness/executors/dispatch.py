"""`harness run` with ``--executor slurm`` or ``--jobs N``: decide what runs, check it, hand it to an executor,
then report as a sequential run does (summary line, failures, the suite's table)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..api import RunContext
from ..errors import ConfigError
from ..runner import _resume_decision, prepare_run, record_path
from ..suite import Suite
from .jobs import plan_jobs
from .options import SLURM_FLAGS
from .resources import check_against_cluster, check_resources, merged
from .worker import JobRequest


def slurm_overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {key: getattr(args, f"slurm_{flag}") for flag, key in SLURM_FLAGS.items()}
    given = {k: v for k, v in given.items() if v is not None}
    for key, value in given.items():
        check_resources({key: value}, f"--slurm-{next(f for f, k in SLURM_FLAGS.items() if k == key)}")
    return given


def wants_executor(args: argparse.Namespace) -> bool:
    """Whether this run goes through an executor (after checking the executor options)."""
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be a positive integer, got {args.jobs}.")
    overrides = slurm_overrides(args)
    if args.executor != "slurm":
        used = [name for name, given in (("--no-wait", args.no_wait), ("--slurm-*", bool(overrides))) if given]
        if used:
            raise ConfigError(f"{' and '.join(used)} apply to --executor slurm only.")
    elif args.jobs != 1:
        raise ConfigError("--jobs applies to --executor local (Slurm runs as many jobs as it schedules).")
    return args.executor == "slurm" or args.jobs > 1


def run_with_executor(args: argparse.Namespace, suite: Suite, overrides: list[str], out: Path, cache_dir: Path,
                      data_root: str | None, threads: int | None) -> int:
    from ..commands.table import print_table

    ctx = RunContext(out_dir=out, cache_dir=cache_dir, data_root=Path(data_root) if data_root else None,
                     device=args.device, progress=not args.no_progress)
    cells = prepare_run(suite, ctx, args.force, args.only)  # the checks and preflight of a sequential run
    to_run = [c for c in cells if args.force or _resume_decision(record_path(out, c), c, False, None, dry=True)[0]]
    queued: set[str] = set()
    if args.executor == "slurm":
        from .slurm import queued_cells

        queued = queued_cells(out)
        to_run = [c for c in to_run if c.id not in queued]
    jobs = plan_jobs(to_run)
    kind = {"kind": args.executor, **({"workers": args.jobs} if args.executor == "local" else {})}
    resources = [merged(job.cells[0].benchmark.slurm, slurm_overrides(args)) for job in jobs]
    requests = [JobRequest(
        suite_path=str(Path(args.suite).resolve()), profile=suite.profile, overrides=tuple(overrides),
        out_dir=str(out.resolve()), cache_dir=str(cache_dir.resolve()),
        data_root=str(Path(data_root).resolve()) if data_root else None, device=args.device, threads=threads,
        force=args.force, cell_ids=tuple(job.ids),
        executor={**kind, **({"resources": res} if args.executor == "slurm" else {})})
        for job, res in zip(jobs, resources)]
    if args.executor == "slurm":
        _check_requests(jobs, resources)
    out.mkdir(parents=True, exist_ok=True)
    skipped = len(cells) - len(to_run) - len(queued)
    print(f"{len(cells)} cells: {len(to_run)} to run in {len(jobs)} jobs, {skipped} already recorded"
          + (f", {len(queued)} still queued from an earlier submission" if queued else ""))
    if args.executor == "local":
        from .local import run_local

        statuses = run_local(jobs, requests, args.jobs, not args.no_progress)
        failed = sorted(cell for cell, status in statuses.items() if status == "failed")
        for cell in failed:
            print(f"  FAILED {cell}: see its record")
    else:
        failed = _run_on_slurm(args, suite, jobs, requests, resources, out)
        if failed is None:
            return 0
    print(f"records in {out}\n")
    print_table(out, suite.table, args.format, args.paper)
    return 1 if failed else 0


def _check_requests(jobs, resources) -> None:
    """Each distinct resource request put to the cluster before anything is submitted."""
    distinct: dict[str, list[str]] = {}
    for job, res in zip(jobs, resources):
        distinct.setdefault(json.dumps(res, sort_keys=True), []).append(job.cells[0].benchmark.name)
    for key, benchmarks in distinct.items():
        check_against_cluster(json.loads(key), sorted(set(benchmarks)))


def _run_on_slurm(args, suite, jobs, requests, resources, out: Path) -> list[str] | None:
    from .follow import follow
    from .slurm import submit

    if jobs:
        entries = submit(jobs, requests, resources, out, {"suite": suite.name, "table": suite.table})
        print(f"submitted {len(entries)} jobs ({', '.join(e['job_id'] for e in entries[:4])}"
              f"{' ...' if len(entries) > 4 else ''}); logs in {out / '.slurm' / 'logs'}")
    if args.no_wait:
        print(f"follow with: python -m harness status {out}")
        return None
    snap = follow(out, not args.no_progress)
    print(snap.line())
    for cell, why in sorted(snap.why.items()):
        print(f"  FAILED {cell}: {why}")
    return sorted(snap.why)
