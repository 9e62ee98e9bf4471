"""Expand a suite into cells and run them: one record per cell, resumable, failure-tolerant.

- Cells are (benchmark x setting x method row), in the suite's order.
- A cell whose record exists with status ``ok`` and the same configuration hash is skipped (resume), unless
  ``force``. A record of a changed cell (its hash differs) or of a failed cell is recomputed.
- A cell that raises is recorded with status ``failed`` and its error, and the run goes on: one bad cell never
  loses the others. The caller gets the counts and exits non-zero when any cell failed.
- Every method option and task option is checked before the first cell runs, so a typo fails in a second,
  not after an hour of training.
- A cell its task says will not run here (``skip_reason``, e.g. ViT-L timing on a CPU) is recorded as ``skipped``
  before anything runs and is not counted by the progress bar.
- A task with ``group_key``/``run_group`` (speed) runs consecutive cells of one key together (the methods of one
  benchmark and setting, timed round by round); each cell still gets its own record, resume and ``--only``
  work per cell, and one failing method fails only its own cell.
"""

from __future__ import annotations

import fnmatch
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import Cell, CellResult, CellSkipped, MethodPlugin, RunContext, Task
from .errors import ConfigError, HarnessError, RecordError
from .eval.evidence import confusion_problem
from .eval.per_image import evidence_problem
from .eval.record_evidence import write_evidence
from .paths import PATH_MAX
from .registries import METHODS, TASKS
from .results import keep_unwritten_record, load_record, new_record, write_record
from .suite import Suite, merge_options, thaw


def _task_option_names(task: str) -> tuple[str, ...] | None:
    if task not in TASKS:
        return None  # check_plan reports the unknown task
    return TASKS.get(task).option_names


def defaults_for_task(suite: Suite, task: str) -> dict[str, Any]:
    """The suite's ``defaults`` that a task takes (e.g. a segmentation schedule does not reach a speed cell)."""
    names = _task_option_names(task)
    return {k: v for k, v in suite.defaults.items() if names is None or k in names}


def _check_defaults_used(suite: Suite) -> None:
    """A default that no benchmark's task takes is an error: it would otherwise be a silent typo."""
    unused = set(suite.defaults)
    for bench in suite.benchmarks:
        unused -= set(defaults_for_task(suite, bench.task))
    if unused:
        tasks = sorted({b.task for b in suite.benchmarks})
        raise ConfigError(f"suite {suite.name!r}: defaults {sorted(unused)} are options of no task in this suite "
                          f"({', '.join(tasks)}); check the spelling or move them to a benchmark's options.")


def _method_option_names(method: str) -> frozenset[str] | None:
    if method not in METHODS:
        return None  # check_plan reports the unknown method
    names = METHODS.get(method).option_names
    return None if names is None else frozenset(names)


def shared_options_for_method(options: dict[str, Any], method: str) -> dict[str, Any]:
    """The benchmark's and setting's ``method_options`` that a method takes (a plugin with ``option_names``):
    e.g. the proposal network's settings do not reach a proposal-free method. A row's own options all reach it."""
    names = _method_option_names(method)
    return {k: v for k, v in options.items() if names is None or k in names}


def _check_method_options_used(suite: Suite) -> None:
    """A benchmark or setting method option that no method of the suite takes is an error (a silent typo)."""
    for bench in suite.benchmarks:
        for setting in suite.settings:
            shared = merge_options(bench.method_options, setting.method_options)
            unused = set(shared)
            for row in suite.methods:
                unused -= set(shared_options_for_method(shared, row.method))
            if unused:
                raise ConfigError(f"suite {suite.name!r}, benchmark {bench.name!r}, setting {setting.name!r}: "
                                  f"method_options {sorted(unused)} are options of no method in this suite; check "
                                  f"the spelling.")


def plan(suite: Suite, only: str | None = None) -> list[Cell]:
    """The cells of ``suite``; ``only`` keeps the cells whose id matches a glob (``coco-stuff/*/deop``)."""
    _check_defaults_used(suite)
    _check_method_options_used(suite)
    cells = []
    for bench in suite.benchmarks:
        defaults = defaults_for_task(suite, bench.task)
        for setting in suite.settings:
            for row in suite.methods:
                cell = Cell(
                    suite=suite.name,
                    profile=suite.profile,
                    benchmark=bench,
                    setting=setting,
                    row=row,
                    task_options=merge_options(defaults, bench.options, setting.options),
                    method_options=merge_options(shared_options_for_method(
                        merge_options(bench.method_options, setting.method_options), row.method), row.options),
                    table=suite.table,
                )
                if only is None or any(fnmatch.fnmatch(cell.id, p) for p in only.split(",")):
                    cells.append(cell)
    if only is not None and not cells:
        ids = [f"{b.name}/{s.name}/{m.name}" for b in suite.benchmarks for s in suite.settings for m in suite.methods]
        raise ConfigError(f"--only {only!r} matches no cell of suite {suite.name!r}. Its cells: {', '.join(ids)}.")
    return cells


def resolve_method(cell: Cell) -> dict[str, Any]:
    """The method's full spec for this cell (validates its options)."""
    plugin = METHODS.get(cell.row.method)
    if not isinstance(plugin, MethodPlugin):
        raise ConfigError(f"method {cell.row.method!r} ({METHODS.origin(cell.row.method)}) does not meet the "
                          f"harness.api.MethodPlugin protocol: subclass it (or SegmentationMethod), which gives the "
                          f"optional members their defaults, and implement resolve(options).")
    try:
        return dict(plugin.resolve(cell.method_options))
    except ConfigError as exc:
        raise ConfigError(f"suite {cell.suite!r}, methods entry {cell.row.name!r} (cell {cell.id}): {exc}") from None


def check_plan(cells: list[Cell]) -> None:
    """Validate every cell's method and task options before running anything."""
    for cell in cells:
        resolve_method(cell)
        task = TASKS.get(cell.benchmark.task)
        if not isinstance(task, Task):
            raise ConfigError(f"task {cell.benchmark.task!r} ({TASKS.origin(cell.benchmark.task)}) does not meet the "
                              f"harness.api.Task protocol: subclass it, which gives the optional members defaults.")
        try:
            task.check(cell)
        except ConfigError as exc:
            raise ConfigError(f"suite {cell.suite!r}, benchmark {cell.benchmark.name!r} "
                              f"(cell {cell.id}): {exc}") from None


def preflight(cells: list[Cell], ctx: RunContext, force: bool) -> None:
    """Everything the cells to run would miss (datasets, weights), reported at once before anything starts."""
    problems: dict[str, list[str]] = {}
    for cell in cells:
        task = TASKS.get(cell.benchmark.task)
        path = record_path(ctx.out_dir, cell)
        longest = len(os.fsencode(os.path.abspath(path))) + len(".confusion.npy") + 40  # + a temp file's affixes
        if longest > PATH_MAX:  # found now, not when the finished cell's record cannot be written
            raise ConfigError(f"the record of cell {cell.id} would be {path}, a path too long for the file system "
                              f"({longest} of {PATH_MAX} bytes with its temp name); pass a shorter --out.")
        if not force and not _resume_decision(path, cell, False, None, dry=True)[0]:
            continue
        for problem in task.preflight(cell, ctx):
            problems.setdefault(problem, []).append(cell.id)
    if problems:
        lines = [f"- {p} (cells: {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''})" for p, ids in problems.items()]
        raise HarnessError(
            f"suite {cells[0].suite!r} (profile {cells[0].profile!r}) cannot run here; nothing was started. "
            f"Missing:\n" + "\n".join(lines) +
            "\nProvide what is listed, or run the synthetic profile: --profile smoke.")


def record_path(out_dir: Path, cell: Cell) -> Path:
    return out_dir / cell.benchmark.name / cell.setting.name / f"{cell.row.name}.json"


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # "ok", "skipped" (already recorded), "failed", "not run" (CellSkipped: not for this machine)
    path: Path
    note: str = ""


@dataclass
class RunSummary:
    outcomes: list[CellOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def line(self) -> str:
        line = (f"{len(self.outcomes)} cells: {self.count('ok')} ran, {self.count('skipped')} skipped "
                f"(already recorded), {self.count('failed')} failed")
        if self.count("not run"):
            line += f", {self.count('not run')} not run here (see their records)"
        return line


def _resume_decision(path: Path, cell: Cell, force: bool, log, dry: bool = False) -> tuple[bool, str]:
    """Should this cell run? Returns (run_it, note). ``dry``: decide without touching files."""
    if not path.exists():
        return True, ""
    if force:
        return True, "recomputed (--force)"
    try:
        old = load_record(path)
    except RecordError as exc:
        if dry:
            return True, "corrupt record"
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        log(f"warning: {exc} It was moved to {aside} and the cell is recomputed.")
        return True, "recomputed (corrupt record moved aside)"
    if old.get("status") != "ok":
        return True, "recomputed (previous attempt failed)"
    if old.get("cell_hash") != cell.hash:
        return True, "recomputed (the cell's configuration changed since it was recorded)"
    problem = confusion_problem(old) or evidence_problem(old)
    if problem:
        if not dry:
            log(f"warning: record {path}: {problem}; the cell is recomputed.")
        return True, "recomputed (its confusion matrix or per-image evidence did not back its metrics)"
    return False, "already recorded"


def _write(path: Path, cell: Cell, spec: dict, result: CellResult | None, error: str | None, tb: str | None,
           wall_s: float, status: str | None = None) -> None:
    result = result or CellResult()
    record = new_record(
        suite=cell.suite,
        method=cell.row.name,
        method_spec={"plugin": cell.row.method, **spec, **result.method_spec},
        benchmark=cell.benchmark.name,
        dataset=cell.benchmark.dataset,
        profile=cell.profile,
        metrics=result.metrics,
        miou_convention=result.miou_convention,
        speed=result.speed,
        weights=result.weights,
        seed=result.seed if result.seed is not None else cell.task_options.get("seed"),
        device=result.device,
        status=status or ("failed" if error else "ok"),
        error=error,
        extra={
            "setting": cell.setting.name,
            "table": cell.table,
            "task": cell.benchmark.task,
            "task_options": thaw(cell.task_options),
            "cell": cell.id,
            "cell_hash": cell.hash,
            "wall_s": wall_s,
            "traceback": tb,
            **result.extra,
        },
    )
    from .train import distributed as dist_utils

    try:
        if dist_utils.is_main():  # under torchrun every rank computes, rank 0 writes
            if result.evidence is not None:  # written first: a record never names a missing file
                record.update(write_evidence(path, result.evidence))
            write_record(path, record, confusion=result.confusion)
    except (RecordError, OSError) as exc:
        raise RecordError(f"{exc} {keep_unwritten_record(path, record, result.confusion)}") from None
    finally:
        dist_utils.barrier()


def _groups(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells whose task gives them the same ``group_key`` run together; the others alone."""
    groups: list[list[Cell]] = []
    previous = None
    for cell in cells:
        task = TASKS.get(cell.benchmark.task)
        key = (cell.benchmark.task, task.group_key(cell))
        if key is not None and key[1] is not None and key == previous:
            groups[-1].append(cell)
        else:
            groups.append([cell])
        previous = key if key is not None and key[1] is not None else None
    return groups


def _run_group(group: list[Cell], ctx: RunContext) -> list[CellResult | BaseException]:
    """The results of a group's cells, in order: a CellResult, or the exception that cell raised (an exception
    of the group as a whole, e.g. its images, fails every cell of it)."""
    task = TASKS.get(group[0].benchmark.task)
    try:
        return list(task.run_group(group, ctx))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, reported, and the run goes on
        return [exc] * len(group)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def prepare_run(suite: Suite, ctx: RunContext, force: bool = False, only: str | None = None) -> list[Cell]:
    """What a run does before anything starts, and all that ``run --dry-run`` does: plan the cells, check every
    cell's method and task options, and the preflight (missing data and weights of the cells that would run). A
    dry-run that passes means the cells will start."""
    cells = plan(suite, only)
    check_plan(cells)
    preflight(cells, ctx, force)
    return cells


def run_suite(suite: Suite, ctx: RunContext, force: bool = False, only: str | None = None) -> RunSummary:
    """Run every cell of ``suite`` (see the module docstring for resume, skip, group and failure rules)."""
    import time

    from tqdm import tqdm

    cells = prepare_run(suite, ctx, force, only)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, CellOutcome] = {}
    notes: dict[str, str] = {}
    to_run: list[Cell] = []
    for cell in cells:
        path = record_path(ctx.out_dir, cell)
        run_it, note = _resume_decision(path, cell, force, ctx.log)
        if not run_it:
            outcomes[cell.id] = CellOutcome(cell, "skipped", path, note)
            continue
        task = TASKS.get(cell.benchmark.task)
        reason = task.skip_reason(cell, ctx)
        if reason:
            _write(path, cell, resolve_method(cell), None, reason, None, 0.0, status="skipped")
            outcomes[cell.id] = CellOutcome(cell, "not run", path, reason)
            continue
        notes[cell.id] = note
        to_run.append(cell)
    groups = _groups(to_run)
    # Cells timed together finish together after minutes of steps: a per-cell rate makes no ETA there (issue 28);
    # such a group shows its own bar of steps with an ETA from the measured ones.
    bar_format = (None if all(len(g) == 1 for g in groups)
                  else "{l_bar}{bar}| {n_fmt}/{total_fmt} cells [{elapsed}]{postfix}")
    bar = tqdm(total=len(to_run), desc=f"{suite.name} [{suite.profile}]", unit="cell", disable=not ctx.progress,
               leave=True, bar_format=bar_format)
    for group in groups:
        bar.set_postfix_str(group[0].id if len(group) == 1 else f"{len(group)} cells of "
                            f"{group[0].benchmark.name}/{group[0].setting.name}, timed together")
        specs = [resolve_method(cell) for cell in group]
        start = time.perf_counter()
        results = _run_group(group, ctx)
        wall_s = (time.perf_counter() - start) / len(group)  # a group's wall time shared by its cells
        for cell, spec, result in zip(group, specs, results):
            path = record_path(ctx.out_dir, cell)
            if isinstance(result, CellSkipped):
                _write(path, cell, spec, None, str(result), None, wall_s, status="skipped")
                outcomes[cell.id] = CellOutcome(cell, "not run", path, str(result))
            elif isinstance(result, BaseException):
                kind = "" if isinstance(result, HarnessError) else f"{type(result).__name__}: "
                error = f"{kind}{result}"
                _write(path, cell, spec, None, error, _traceback(result), wall_s)
                outcomes[cell.id] = CellOutcome(cell, "failed", path, error)
                tqdm.write(f"cell {cell.id} failed: {error} (recorded in {path})")
            else:
                try:
                    _write(path, cell, spec, result, None, None, wall_s)
                    outcomes[cell.id] = CellOutcome(cell, "ok", path, notes[cell.id])
                except RecordError as exc:  # computed but not written: kept elsewhere, the run goes on
                    outcomes[cell.id] = CellOutcome(cell, "failed", path, str(exc))
                    tqdm.write(f"cell {cell.id}: {exc}")
            bar.update(1)
    bar.close()
    return RunSummary([outcomes[cell.id] for cell in cells])
