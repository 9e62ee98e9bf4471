"""Follow a run submitted with `harness run --executor slurm --no-wait`: done, running, pending and failed cells
(a failed job named with its log file and last error line), then the suite's table once every cell has ended.

Exit codes: 0 every cell done, 1 a cell failed (or, with --once, cells are still queued), 2 no Slurm run there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "follow a Slurm run (harness run --executor slurm --no-wait) and print its table when it ends"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the run's --out directory")
    parser.add_argument("--once", action="store_true", help="print the cells' states once and return")
    parser.add_argument("--format", default="console", choices=("console", "md", "latex", "csv"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..errors import HarnessError
    from ..executors.follow import follow
    from ..executors.slurm import MANIFEST, load_manifest
    from .table import print_table

    out = Path(args.run)
    if not (out / MANIFEST).is_file():
        raise HarnessError(f"{out} holds no Slurm run ({out / MANIFEST} is missing); submit one with "
                           f"`harness run SUITE --executor slurm --out {out}`.")
    snap = follow(out, progress=not args.no_progress, wait=not args.once)
    print(snap.line())
    for cell, why in sorted(snap.why.items()):
        print(f"  FAILED {cell}: {why}")
    if not snap.finished:
        return 1
    print()
    print_table(out, load_manifest(out).get("table"), args.format, False)
    return 1 if snap.why else 0
