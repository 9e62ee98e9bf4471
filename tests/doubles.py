"""Test doubles for the harness core: a method plugin and tasks whose results follow from their options.

Registered through HARNESS_PLUGINS (tests/conftest.py), the same way a user's package adds plugins.
"""

from __future__ import annotations

from harness.api import CellResult, MethodPlugin, Task
from harness.errors import ConfigError
from harness.registries import DATASETS, METHODS, TASKS

CALLS: list[str] = []  # cell ids run by DoubleTask, in order (for resume tests)


class EchoMethod(MethodPlugin):
    """A method whose 'quality' is an option, so tests know what every metric must be."""

    OPTIONS = {"score": 50.0, "fail": False, "speed": 10.0}
    description = "test double: metrics follow from its options"
    kind = "double"

    def resolve(self, options):
        unknown = set(options) - set(self.OPTIONS)
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)}; known: {sorted(self.OPTIONS)}")
        return {**self.OPTIONS, **options}


class DoubleTask(Task):
    """Reports hiou = score, seen = score + offset, unseen = score - offset; fps = speed."""

    def check(self, cell):
        unknown = set(cell.task_options) - {"offset", "seed", "missing"}
        if unknown:
            raise ConfigError(f"unknown task option(s) {sorted(unknown)}")

    def preflight(self, cell, ctx):
        """``missing: NAME``: the cell would miss NAME (as a dataset or weights would be)."""
        return [f"{cell.task_options['missing']} is missing"] if cell.task_options.get("missing") else []

    def run(self, cell, ctx):
        spec = METHODS.get(cell.row.method).resolve(cell.method_options)
        CALLS.append(cell.id)
        if spec["fail"]:
            raise RuntimeError("the double was told to fail")
        offset = float(cell.task_options.get("offset", 0.0))
        return CellResult(
            metrics={"hiou": spec["score"], "miou_seen": spec["score"] + offset,
                     "miou_unseen": spec["score"] - offset, "pacc": 2 * spec["score"] / 3},
            speed={"fps": spec["speed"]},
            weights={"clip": "random"},
            miou_convention="d2-v0.6",
        )


GROUPS: list[list[str]] = []  # cell ids of each group GroupTask ran together


class GroupTask(DoubleTask):
    """DoubleTask whose cells of one benchmark and setting run together (as speed's do); ``here: false`` is a
    cell that does not run on this machine."""

    def check(self, cell):
        unknown = set(cell.task_options) - {"offset", "seed", "here"}
        if unknown:
            raise ConfigError(f"unknown task option(s) {sorted(unknown)}")

    def skip_reason(self, cell, ctx):
        return None if cell.task_options.get("here", True) else "not on this machine"

    def group_key(self, cell):
        return (cell.benchmark.name, cell.setting.name)

    def run_group(self, cells, ctx):
        GROUPS.append([c.id for c in cells])
        out = []
        for cell in cells:
            try:
                out.append(self.run(cell, ctx))
            except RuntimeError as exc:
                out.append(exc)
        return out


ECHO = EchoMethod()
DOUBLE_TASK = DoubleTask()
METHODS.register("double-echo", "doubles:ECHO")
TASKS.register("double-task", "doubles:DOUBLE_TASK")
GROUP_TASK = GroupTask()
TASKS.register("group-task", "doubles:GROUP_TASK")
DATASETS.register("double-data", "doubles:ECHO")
