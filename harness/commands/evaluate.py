"""Score label-map predictions (from any method) against a prepared dataset and write a record.

--pred DIR holds one PNG per ground-truth label, named like it (<stem>.png), at the original image size, with
the train ids of the dataset's classes (8-bit, or 16-bit PNG for more than 255 classes). The metrics come from
one confusion matrix over all classes (METHOD_SPEC §11); the matrix is stored beside the record
(<record>.confusion.npy), so any metric can be recomputed later.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "score prediction PNGs against a prepared dataset and write a record"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.eval.metrics import CONVENTIONS, DEFAULT_CONVENTION

    parser.add_argument("dataset", help="dataset name (see `python -m harness list datasets`)")
    parser.add_argument("--pred", required=True, metavar="DIR", help="folder of prediction PNGs")
    parser.add_argument("--split", default="val", choices=("val", "train"), help="split to score (default val)")
    parser.add_argument("--convention", default=DEFAULT_CONVENTION, choices=CONVENTIONS,
                        help=f"mIoU convention (default {DEFAULT_CONVENTION}, as the official evaluators)")
    parser.add_argument("--data-root", metavar="PATH", default=None,
                        help="data root (default: $HARNESS_DATA or ./datasets)")
    parser.add_argument("--out", metavar="FILE.json", default=None,
                        help="record path (default: results/external/<dataset>/<pred folder name>.json)")


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def run(args: argparse.Namespace) -> int:
    from harness.data import data_root, get_info
    from harness.eval.metrics import compute_metrics
    from harness.eval.predictions import score_prediction_dir
    from harness.paths import check_output_file
    from harness.results import new_record, write_record

    info = get_info(args.dataset)
    pred_dir = Path(args.pred)
    out = Path(args.out) if args.out else Path("results") / "external" / info.name / f"{pred_dir.resolve().name}.json"
    check_output_file(out, "--out")  # before scoring: scores are never computed and then lost
    scored = score_prediction_dir(info, pred_dir, split=args.split, root=data_root(args.data_root), progress=None)
    metrics = compute_metrics(scored.matrix, unseen=scored.unseen, convention=args.convention,
                              class_names=scored.class_names)
    record = new_record(
        suite="evaluate", method="external", method_spec={"pred_dir": str(pred_dir.resolve()), "split": args.split},
        benchmark=info.name, dataset=info.name, profile="external", metrics=metrics,
        miou_convention=args.convention, extra={"n_images": scored.n_images},
    )
    write_record(out, record, confusion=scored.matrix)
    summary = [f"mIoU {_format(metrics['miou'])}", f"pAcc {_format(metrics['pacc'])}"]
    if "hiou" in metrics:
        summary += [f"seen {_format(metrics['miou_seen'])}", f"unseen {_format(metrics['miou_unseen'])}",
                    f"hIoU {_format(metrics['hiou'])}"]
    print(f"{info.name}/{args.split} ({scored.n_images} images, {args.convention}): " + ", ".join(summary))
    if scored.unmatched_predictions:
        print(f"note: {scored.unmatched_predictions} PNGs in {pred_dir} match no ground-truth label and were ignored")
    print(f"record: {out}")
    return 0
