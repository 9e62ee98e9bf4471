"""Scoring label-map predictions stored on disk (ours or anyone's) against a prepared split.

A prediction is a PNG (8- or 16-bit) named like the ground-truth label (``<stem>.png``), at the original
image size, holding train ids 0..K-1 of the split's classes. Missing files, wrong sizes and out-of-range
values are all collected first and reported together, naming the files, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.data.info import DatasetInfo
from harness.data.io import read_label
from harness.data.layout import MAX_NAMED, list_samples, verify_prepared
from harness.errors import DataError

from .confusion import ConfusionMatrix


@dataclass(frozen=True)
class ScoredSplit:
    matrix: np.ndarray  # K x K int64, matrix[gt, pred] (K x K+1 with a no-prediction column, see metrics)
    class_names: tuple[str, ...]
    unseen: tuple[int, ...]
    n_images: int
    unmatched_predictions: int  # predictions (PNGs, or images of a JSON file) with no ground truth (ignored)
    missing_images: tuple[str, ...] = ()  # stems scored as missing (JSON files only; a PNG folder must be complete)


def _some(names: list[str]) -> str:
    return ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def score_prediction_dir(info: DatasetInfo, pred_dir: str | Path, split: str = "val",
                         root: str | Path | None = None, progress: bool | None = False) -> ScoredSplit:
    """Accumulate one confusion matrix over every ground-truth label of `split` and its prediction PNG."""
    from tqdm import tqdm

    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError(f"--pred {pred_dir} is not a folder of prediction PNGs.")
    verify_prepared(info, root, splits=(split,))
    samples = list_samples(info, split, root)
    class_names = info.split_class_names(split)
    k = len(class_names)
    missing = [f"{s.stem}.png" for s in samples if not (pred_dir / f"{s.stem}.png").is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(samples)} predictions are missing from {pred_dir} (expected one "
            f"<stem>.png per ground-truth label of {info.name}/{split}): {_some(missing)}."
            + (" It holds a sem_seg_predictions.json: pass that file as --pred to score it."
               if (pred_dir / "sem_seg_predictions.json").is_file() else "")
        )
    cm = ConfusionMatrix(k, "cpu", ignore_index=info.ignore_index, check=False)
    wrong_size: list[str] = []
    out_of_range: list[str] = []
    for s in tqdm(samples, desc=f"evaluate {info.name}/{split}", unit="img", disable=None if progress is None else not progress):
        pred_path = pred_dir / f"{s.stem}.png"
        pred = read_label(pred_path, remedy="write it again as a single-channel PNG of train ids")
        gt = read_label(s.label)
        if pred.shape != gt.shape:
            wrong_size.append(f"{pred_path.name} ({pred.shape[0]}x{pred.shape[1]}, ground truth "
                              f"{gt.shape[0]}x{gt.shape[1]})")
            continue
        if pred.max(initial=0) >= k:
            out_of_range.append(f"{pred_path.name} (max {int(pred.max())})")
            continue
        cm.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64)))
    problems = []
    if wrong_size:
        problems.append(f"{len(wrong_size)} predictions differ in size from the ground truth: {_some(wrong_size)}")
    if out_of_range:
        problems.append(f"{len(out_of_range)} predictions hold values outside 0..{k - 1}: {_some(out_of_range)}")
    if problems:
        raise DataError(
            f"predictions in {pred_dir} do not fit {info.name}/{split}: " + "; ".join(problems)
            + ". Write each prediction at the original image size with train ids of the dataset's classes."
        )
    gt_stems = {s.stem for s in samples}
    unmatched = sum(1 for p in pred_dir.glob("*.png") if p.stem not in gt_stems)
    unseen = info.unseen if split == "val" else ()
    return ScoredSplit(cm.numpy(), class_names, unseen, len(samples), unmatched)
