"""Check recorded results against a reference file of (cell, metric, value, tolerance, direction).

Exit 0 when every figure holds, 1 with a table of what regressed or is missing, 2 for unusable input.
"""

from __future__ import annotations

import argparse

HELP = "check results against a stored reference (exit 0 ok, 1 regression, 2 unusable input)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results directory written by `python -m harness run`")
    parser.add_argument("--against", required=True, help="reference file, e.g. results/reference/smoke-cpu.yaml")
    parser.add_argument("--verbose", action="store_true", help="show passing figures too")


def run(args: argparse.Namespace) -> int:
    from ..check import run_check

    code, text = run_check(args.results, args.against, verbose=args.verbose)
    print(text)
    return code
