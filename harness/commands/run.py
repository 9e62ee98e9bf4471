"""Run a suite: one record per cell under --out, then print the suite's table.

Re-running the same command skips cells already recorded (resume); --force recomputes them. A failed cell is
recorded with its error and the run goes on; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..executors.options import add_executor_arguments

HELP = "run a suite (methods x benchmarks x settings) and print its table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite file, e.g. suites/smoke.yaml")
    parser.add_argument("--profile", default=None, help="profile defined in the suite (default: paper)")
    parser.add_argument("--out", default=None, help="results directory (default: runs/<suite>/<profile>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a suite key, e.g. --set defaults.seed=1 (repeatable)")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="CLIP weights file for every method (an open_clip checkpoint or OpenAI's ViT-B-16.pt); "
                             "same as --set settings.<each>.method_options.clip_weights=PATH")
    parser.add_argument("--force", action="store_true", help="recompute cells that are already recorded")
    parser.add_argument("--only", default=None, metavar="GLOB",
                        help="run only cells whose id (benchmark/setting/method) matches, comma-separated globs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the suite's `threads`, else torch's choice; the smoke and "
                             "miniworld profiles ask for 1: their tiny models run several times faster on one)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate every cell's method and task options, list the cells and exit")
    parser.add_argument("--data-root", default=None, help="prepared datasets (default: $HARNESS_DATA or ./datasets)")
    parser.add_argument("--cache-dir", default=None, help="stage cache (default: $HARNESS_CACHE or ./cache)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--format", default="console", choices=("console", "md", "latex", "csv"))
    parser.add_argument("--paper", action="store_true", help="put the paper's numbers beside ours")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--save-predictions", choices=("json", "png"), default=None,
                        help="also write each segmentation cell's predictions into <record stem>.predictions/ beside its "
                             "record: json = detectron2's sem_seg_predictions.json (COCO RLE), png = label PNGs; "
                             "`harness evaluate` reads both (cells already recorded are skipped: add --force)")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..api import RunContext
    from ..devices import check_device
    from ..errors import ConfigError, RecordError
    from ..executors.dispatch import run_with_executor, wants_executor
    from ..paths import check_input_dir, check_output_dir, check_weights_file
    from ..runner import prepare_run, run_suite
    from ..suite import MAX_THREADS, load_suite
    from .table import print_table

    suite = load_suite(args.suite, profile=args.profile, overrides=args.overrides)
    check_device(args.device)
    elsewhere = wants_executor(args)
    overrides = list(args.overrides)
    if args.weights:
        weights = str(check_weights_file(args.weights, "--weights").resolve())
        extra = [f"settings.{s.name}.method_options.clip_weights={weights}" for s in suite.settings]
        overrides += extra
        suite = load_suite(args.suite, profile=args.profile, overrides=overrides)
    threads = args.threads if args.threads is not None else suite.threads
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be a positive integer (at most {MAX_THREADS}), got {threads}.")
        import torch

        torch.set_num_threads(threads)  # records say how many (env.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one process group for the run
        from ..train import distributed

        distributed.init_from_env(args.device)
    out = check_output_dir(args.out or Path("runs") / suite.name / suite.profile, "--out")
    data_root = args.data_root or os.environ.get("HARNESS_DATA")
    if data_root:
        check_input_dir(data_root, "--data-root" if args.data_root else "$HARNESS_DATA")
    cache_dir = check_output_dir(args.cache_dir or os.environ.get("HARNESS_CACHE", "cache"),
                                 "--cache-dir" if args.cache_dir else "the stage cache ($HARNESS_CACHE or ./cache)")
    ctx = RunContext(
        out_dir=out,
        cache_dir=cache_dir,
        data_root=Path(data_root) if data_root else None,
        device=args.device,
        progress=not args.no_progress,
        save_predictions=args.save_predictions,
    )
    if args.dry_run:  # exactly the checks and preflight of a run (runner.prepare_run), nothing written
        cells = prepare_run(suite, ctx, args.force, args.only)
        for cell in cells:
            print(cell.id)
        print(f"{len(cells)} cells; records would go under {out}")
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"  # one per process: torchrun ranks probe at once
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RecordError(f"the output directory {out} is not writable ({exc.strerror}). Pass a writable --out.") from None
    if elsewhere:
        return run_with_executor(args, suite, overrides, out, cache_dir, data_root, threads)
    summary = run_suite(suite, ctx, force=args.force, only=args.only)
    print(summary.line() + f"; records in {out}")
    if args.save_predictions and summary.count("skipped"):
        print(f"  note: no predictions were written for the {summary.count('skipped')} cells already recorded; "
              f"add --force to recompute them with --save-predictions")
    for outcome in summary.failed:
        print(f"  FAILED {outcome.cell.id}: {outcome.note}")
    print()
    print_table(out, suite.table, args.format, args.paper)
    return 1 if summary.failed else 0
