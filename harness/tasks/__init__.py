"""The TASKS registry's plugin module: one line per task a suite benchmark can name.

A task is what a benchmark does with a method (see ``harness.api``). Tasks arrive with the methods and the
speed protocol; until a task is registered here, suites that name it fail validation with the known list.
"""

from ..registries import TASKS  # noqa: F401  (registrations go below)
