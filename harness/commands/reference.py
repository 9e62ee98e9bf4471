"""Write a reference file (for `check`) from the records of a run: one figure per (cell, metric).

Use it once to store what a run measured, then review and commit the file: a reference is data with an origin
(it records the directory, git sha and profile it came from), never a number typed by hand.
"""

from __future__ import annotations

import argparse

HELP = "write a check reference file from recorded results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results directory written by `python -m harness run`")
    parser.add_argument("--out", required=True, help="reference file to write, e.g. results/reference/smoke-cpu.yaml")
    parser.add_argument("--metrics", default="hiou,miou_seen,miou_unseen,pacc",
                        help="comma-separated metrics to store (default: hiou,miou_seen,miou_unseen,pacc; "
                             "'' for none, e.g. with --ratio only)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="absolute tolerance per figure")
    parser.add_argument("--direction", default="equal", choices=("higher", "lower", "equal"))
    parser.add_argument("--ratio", action="append", default=[], metavar="CELL:OVER:METRIC[:TOL[:DIR[:NOTE]]]",
                        help="also store a ratio between two cells' metric, e.g. "
                             "'vit-b16/as-published/deop:vit-b16/as-published/simbaseline:fps:1.8:higher:the "
                             "paper's speed-up' (repeatable; tolerance and direction default to --tolerance / "
                             "--direction; the note is printed beside a failure)")
    parser.add_argument("--name", default=None, help="the reference's name (default: the file's stem)")
    parser.add_argument("--description", default=None, help="what the figures are and how they were measured")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..check import build_reference
    from ..paths import check_output_file

    check_output_file(args.out, "--out")
    text = build_reference(args.results, [m for m in args.metrics.split(",") if m], args.tolerance, args.direction,
                           args.ratio, args.name or Path(args.out).stem, args.description)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0
