"""The command-line options of the executors (``harness run --executor ... --jobs ... --slurm-*``)."""

from __future__ import annotations

import argparse

from .resources import RESOURCE_KEYS

# --slurm-<flag> -> resource key
SLURM_FLAGS = {"partition": "partition", "account": "account", "qos": "qos", "constraint": "constraint",
               "gpus": "gpus_per_node", "cpus": "cpus_per_task", "mem_gb": "mem_gb", "timeout_min": "timeout_min"}


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("executors (see README, 'On a cluster')")
    group.add_argument("--executor", choices=("local", "slurm"), default="local",
                       help="local: this machine (default); slurm: one job per cell or speed group, via submitit")
    group.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="local executor: N worker processes (one GPU each where there are N GPUs); default 1: "
                            "cells run in this process")
    group.add_argument("--no-wait", action="store_true",
                       help="slurm: return once submitted; follow later with `harness status OUT`")
    for flag, key in SLURM_FLAGS.items():
        kind = RESOURCE_KEYS[key][0]
        group.add_argument(f"--slurm-{flag.replace('_', '-')}", dest=f"slurm_{flag}", default=None, metavar="V",
                           type=float if kind == (int, float) else kind,
                           help=f"slurm: {RESOURCE_KEYS[key][2]} (overrides the suite's `slurm: {{{key}}}`)")
