"""The jobs of a run: which cells run together, and which job each waits for.

- A speed group (the cells a task times together, `runner._groups`) is one job on one device.
- Any other cell is a job of its own. Cells of one benchmark and setting train on the same data with the same
  schedule and seed, so the stages they share (prompts, proposals) are built by the first of them, the *stage job*;
  the others depend on it. A group that is alone needs no dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api import Cell
from ..registries import TASKS
from ..runner import _groups


@dataclass
class Job:
    cells: list[Cell]
    after: int | None = None  # index of the stage job this one waits for

    @property
    def name(self) -> str:
        first = self.cells[0]
        return first.id if len(self.cells) == 1 else f"{first.benchmark.name}/{first.setting.name}/<speed group>"

    @property
    def ids(self) -> list[str]:
        return [cell.id for cell in self.cells]


def _is_group_task(cell: Cell) -> bool:
    """Whether the cell's task times it with others (harness.api.Task.group_key: None for a cell that runs alone)."""
    return TASKS.get(cell.benchmark.task).group_key(cell) is not None


def plan_jobs(cells: list[Cell]) -> list[Job]:
    """The jobs for ``cells`` (in run order): stage jobs come before the jobs that wait for them."""
    jobs: list[Job] = []
    stage_job: dict[tuple[str, str], int] = {}
    for group in _groups(cells):
        first = group[0]
        if _is_group_task(first):
            jobs.append(Job(group))
            continue
        key = (first.benchmark.name, first.setting.name)
        if key in stage_job:
            jobs.append(Job(group, after=stage_job[key]))
        else:
            stage_job[key] = len(jobs)
            jobs.append(Job(group))
    return jobs
