"""The template axis: FLOSS's template rankings for one method on one benchmark (the file
`templates: floss:<file>.json` reads).

  python -m harness templates rank SUITE --only 'BENCHMARK/SETTING/METHOD' --out FILE.json [--profile NAME]
      [--set KEY=VALUE ...] [--max-images N] [--split train]

The cell picked by --only (exactly one segmentation cell of a dense training-free method) is built with its
suite's options; each of the 80 ImageNet templates alone then classifies the unlabelled images of the benchmark's
train split (labels are not read), and the templates are ranked per class by mean prediction entropy, as FLOSS
publishes them (yasserben/FLOSS @ccf1d49). The model side is `methods.tools.template_ranking`, reached through
the TOOLS registry.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

HELP = "the template axis: rank the 80 ImageNet templates per class on a train split (FLOSS's rankings file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    parser = sub.add_parser("rank", help="FLOSS's per-class entropy ranking of the 80 ImageNet templates")
    parser.add_argument("suite", help="suite file, e.g. suites/templates.yaml")
    parser.add_argument("--only", required=True, metavar="GLOB", help="the one cell: BENCHMARK/SETTING/METHOD")
    parser.add_argument("--out", required=True, help="rankings file to write (.json)")
    parser.add_argument("--profile", default=None, help="profile defined in the suite (default: paper)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a suite value, as for run")
    parser.add_argument("--split", default="train", help="the unlabelled split to rank on (default train)")
    parser.add_argument("--max-images", type=int, default=None, help="the first N images of the split (default all)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the suite's)")
    parser.add_argument("--data-root", default=None, help="prepared datasets (default: $HARNESS_DATA or ./datasets)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..api import RunContext
    from ..devices import check_device
    from ..errors import ConfigError
    from ..paths import check_input_dir
    from ..registries import TOOLS
    from ..runner import plan
    from ..suite import MAX_THREADS, load_suite
    from ..tasks.common import train_for_evaluation, vocabulary
    from ..tasks.segmentation import segmentation_options

    if not args.out.endswith(".json"):
        raise ConfigError(f"--out {args.out!r}: a rankings file ends in .json (templates: floss:<file>.json).")
    if args.max_images is not None and args.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1, got {args.max_images}.")
    suite = load_suite(args.suite, profile=args.profile, overrides=args.overrides)
    check_device(args.device)
    cells = [c for c in plan(suite, args.only) if c.benchmark.task == "segmentation"]
    if len(cells) != 1:
        raise ConfigError(f"--only {args.only!r} must pick exactly one segmentation cell of {args.suite}, got "
                          f"{[c.id for c in cells] or 'none'}.")
    cell = cells[0]
    threads = args.threads if args.threads is not None else suite.threads
    if threads is not None:
        if not 1 <= threads <= MAX_THREADS:
            raise ConfigError(f"--threads must be a positive integer (at most {MAX_THREADS}), got {threads}.")
        torch.set_num_threads(threads)
    data_root = args.data_root or os.environ.get("HARNESS_DATA")
    if data_root:
        check_input_dir(data_root, "--data-root" if args.data_root else "$HARNESS_DATA")
    ctx = RunContext(out_dir=Path(args.out).parent, cache_dir=Path(os.environ.get("HARNESS_CACHE", "cache")),
                     data_root=Path(data_root) if data_root else None, device=args.device,
                     progress=not args.no_progress)
    opts = {**segmentation_options(cell), "split": args.split, "max_images": args.max_images}
    evaluation = train_for_evaluation(replace(cell, task_options=opts), ctx, opts)
    dataset, n = evaluation.dataset, evaluation.n_images
    bar = tqdm(total=n, desc=f"rank templates {cell.id}", unit="img", disable=args.no_progress)
    rankings = TOOLS.get("template-rankings")(evaluation.fitted.segmenter,
                                               (dataset[i]["image"] for i in range(n)),
                                               vocabulary(evaluation.info, False), lambda i: bar.update(1))
    bar.close()
    rankings["provenance"] = {
        "method": "FLOSS entropy ranking (yasserben/FLOSS @ccf1d49), harness templates rank",
        "command": "python -m harness " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "suite": suite.name, "profile": suite.profile, "cell": cell.id, "dataset": evaluation.info.name,
        "split": args.split, "images": n, "method_options": dict(cell.method_options)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rankings, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}: {len(rankings['classes'])} classes ranked on {n} {args.split} images of "
          f"{evaluation.info.name}")
    return 0
