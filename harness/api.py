"""The small contracts between the runner, tasks and method plugins.

- A *method plugin* (registered in ``METHODS``) is an object with ``resolve(options) -> dict``: the full spec
  of the method with these options applied, raising ``ConfigError`` for an unknown or invalid option. What else
  a plugin offers (build, train, predict) is the business of the tasks that use it.
- A *task* (registered in ``TASKS``) is what a benchmark does with a method: train and evaluate, time it,
  measure proposal recall. It has ``run(cell, ctx) -> CellResult`` and may have ``check(cell)`` to reject bad
  options before any cell runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .suite import Benchmark, MethodRow, Setting, thaw


class CellSkipped(Exception):  # noqa: N818 - not an error: the cell was not meant to run here
    """Raised by a task for a cell that does not run in this environment (e.g. ViT-L timing on a CPU by default).
    The record says so (status ``skipped``) and why; resume retries it, e.g. on a machine with a GPU."""


@runtime_checkable
class MethodPlugin(Protocol):
    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Cell:
    """One (benchmark, setting, method row) of a suite, with its options merged."""

    suite: str
    profile: str
    benchmark: Benchmark
    setting: Setting
    row: MethodRow
    task_options: Mapping[str, Any]
    method_options: Mapping[str, Any]
    table: str | None = None  # the paper table layout the suite prints

    @property
    def id(self) -> str:
        return f"{self.benchmark.name}/{self.setting.name}/{self.row.name}"

    def config(self) -> dict[str, Any]:
        """Everything that determines this cell's result (the suite name and descriptions excluded)."""
        return {
            "profile": self.profile,
            "benchmark": self.benchmark.name,
            "task": self.benchmark.task,
            "dataset": self.benchmark.dataset,
            "setting": self.setting.name,
            "method": self.row.name,
            "plugin": self.row.method,
            "task_options": thaw(self.task_options),
            "method_options": thaw(self.method_options),
        }

    @property
    def hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class RunContext:
    """Where and how cells run; shared by every cell of a run."""

    out_dir: Path
    cache_dir: Path
    data_root: Path | None = None
    device: str = "auto"
    progress: bool = True
    log: Any = print
    save_predictions: str | None = None  # "json" | "png": tasks that predict label maps write them (run --save-predictions)


@dataclass
class CellResult:
    """What a task returns for a cell; the runner turns it into a record."""

    metrics: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    method_spec: dict[str, Any] = field(default_factory=dict)
    miou_convention: str | None = None
    confusion: Any = None
    device: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodEnv:
    """What a method needs to train its stages and predict: data, cache, device, schedules.

    ``schedules`` holds per-stage training overrides from the suite (``train.prompts``, ``train.proposals``,
    ``train.head``: iters, batch_size, lr, crop ...); a method uses its official recipe for everything else.
    """

    train_dataset: str
    data_root: Path | None
    cache_dir: Path
    device: str = "cpu"
    seed: int = 0
    schedules: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    log: Any = print


class Task(Protocol):
    """What a benchmark does with a method. Optional members: ``check(cell)`` (validate options before anything
    runs), ``preflight(cell, ctx)`` (missing data/weights), and ``option_names`` (the task options it takes:
    a suite's ``defaults`` reach it only where it takes them; without it, every default reaches it)."""

    def run(self, cell: Cell, ctx: RunContext) -> CellResult: ...
