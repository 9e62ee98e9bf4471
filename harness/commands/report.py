"""Write one self-contained HTML report (inline styles, script and charts; opens offline) over one or more runs.

It holds the paper-layout tables with the paper's numbers and the bootstrap intervals, per-class IoU (sortable, and
a bar chart per benchmark with the methods side by side), the speed-accuracy plot and the speed breakdown, every
flag and warning the console table prints, and the provenance of the numbers.
"""

from __future__ import annotations

import argparse

HELP = "write records as one self-contained HTML report (tables, intervals, per-class IoU, speed, provenance)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="results directories written by `harness run`")
    parser.add_argument("--html", required=True, metavar="FILE", help="the report file to write (.html)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import RecordError
    from ..paths import check_output_file
    from ..report.page import write_report

    check_output_file(args.html, "--html", (".html", ".htm"))
    for run_dir in args.runs:  # every input before any work
        if not Path(run_dir).is_dir():
            raise RecordError(f"{run_dir} is not a results directory. Run a suite first (python -m harness run).")
    path = write_report(args.runs, args.html)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, self-contained)")
    return 0
