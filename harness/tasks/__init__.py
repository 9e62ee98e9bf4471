"""The TASKS registry's plugin module: one line per task a suite benchmark can name.

A task is what a benchmark does with a method (see ``harness.api``).
"""

from ..registries import TASKS

TASKS.register("segmentation", "harness.tasks.segmentation:SEGMENTATION")
TASKS.register("speed", "harness.tasks.speed:SPEED")
TASKS.register("recall", "harness.tasks.recall:RECALL")
