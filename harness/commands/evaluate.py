"""Score label-map predictions (from any method) against a prepared dataset and write a record.

--pred DIR holds one PNG per ground-truth label, named like it (<stem>.png), at the original image size, with
the train ids of the dataset's classes (8-bit, or 16-bit PNG for more than 255 classes). The metrics come from
one confusion matrix over all classes (METHOD_SPEC §11); the matrix is stored beside the record
(<record>.confusion.npy), so any metric can be recomputed later.

--pred FILE.json is detectron2's sem_seg_predictions.json (COCO RLE per class per image), as the official
repositories write it (`harness.eval.sem_seg_json`); the record names the file and its sha256.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "score prediction PNGs or a detectron2 sem_seg_predictions.json against a prepared dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.eval.metrics import CONVENTIONS, DEFAULT_CONVENTION

    parser.add_argument("dataset", help="dataset name (see `python -m harness list datasets`)")
    parser.add_argument("--pred", required=True, metavar="DIR|FILE.json",
                        help="folder of prediction PNGs, or detectron2's sem_seg_predictions.json")
    parser.add_argument("--split", default="val", choices=("val", "train"), help="split to score (default val)")
    parser.add_argument("--convention", default=DEFAULT_CONVENTION, choices=CONVENTIONS,
                        help=f"mIoU convention (default {DEFAULT_CONVENTION}, as the official evaluators)")
    parser.add_argument("--data-root", metavar="PATH", default=None,
                        help="data root (default: $HARNESS_DATA or ./datasets)")
    parser.add_argument("--out", metavar="FILE.json", default=None,
                        help="record path (default: results/external/<dataset>/<pred folder name>.json; for a "
                             "file <its folder name>_<its stem>.json)")


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
    root = data_root(args.data_root)
    from_file = pred_dir.is_file() or pred_dir.suffix == ".json"
    default_name = f"{pred_dir.resolve().parent.name}_{pred_dir.stem}.json" if from_file else \
        f"{pred_dir.resolve().name}.json"
    out = Path(args.out) if args.out else Path("results") / "external" / info.name / default_name
    check_output_file(out, "--out", suffixes=(".json",))  # .json: table/check find records by it; before scoring: scores are never computed and then lost
    if from_file:
        from harness.eval.sem_seg_json import score_prediction_json
        from harness.results import file_sha256

        scored = score_prediction_json(info, pred_dir, split=args.split, root=root, progress=None)
        sha256 = file_sha256(pred_dir)
        spec = {"pred_file": str(pred_dir.resolve()), "sha256": sha256, "format": "detectron2 sem_seg_predictions.json",
                "split": args.split}
        weights = {"tag": "external predictions", "file": str(pred_dir.resolve()), "sha256": sha256}
    else:
        scored = score_prediction_dir(info, pred_dir, split=args.split, root=root, progress=None)
        spec, weights = {"pred_dir": str(pred_dir.resolve()), "split": args.split}, None
    metrics = compute_metrics(scored.matrix, unseen=scored.unseen, convention=args.convention,
                              class_names=scored.class_names)
    extra = {"n_images": scored.n_images}
    if from_file:
        extra.update(missing_images=len(scored.missing_images), missing_image_names=list(scored.missing_images),
                     unmatched_prediction_images=scored.unmatched_predictions)
    record = new_record(
        suite="evaluate", method="external", method_spec=spec, weights=weights,
        benchmark=info.name, dataset=info.name, profile="external", metrics=metrics,
        miou_convention=args.convention, extra=extra,
    )
    write_record(out, record, confusion=scored.matrix)
    summary = [f"mIoU {_format(metrics['miou'])}", f"pAcc {_format(metrics['pacc'])}"]
    if "hiou" in metrics:
        summary += [f"seen {_format(metrics['miou_seen'])}", f"unseen {_format(metrics['miou_unseen'])}",
                    f"hIoU {_format(metrics['hiou'])}"]
    print(f"{info.name}/{args.split} ({scored.n_images} images, {args.convention}): " + ", ".join(summary))
    if scored.missing_images:
        from harness.data.layout import MAX_NAMED

        names = ", ".join(scored.missing_images[:MAX_NAMED])
        more = len(scored.missing_images) - MAX_NAMED
        print(f"warning: {len(scored.missing_images)} of {scored.n_images} images have no entry in {pred_dir} and "
              f"were scored as missing (every labelled pixel a miss): {names}" + (f" and {more} more" if more > 0 else "")
              + " (all listed in the record)")
    if scored.matrix.shape[1] > scored.matrix.shape[0]:
        print(f"note: {int(scored.matrix[:, -1].sum())} labelled pixels had no prediction and count as misses")
    if scored.unmatched_predictions:
        what = "images named" if from_file else "PNGs"
        print(f"note: {scored.unmatched_predictions} {what} in {pred_dir} match no ground-truth label and were ignored")
    print(f"record: {out}")
    return 0
