"""Metrics from one confusion matrix: mIoU, per-class IoU, pAcc, seen/unseen mIoU and hIoU (METHOD_SPEC §11).

With ``matrix[gt, pred]`` over valid-GT pixels: tp = diagonal, pos_gt = row sums, pos_pred = column sums
(restricted to valid-GT pixels, as the official ``pos_pred``), IoU_c = tp / (pos_gt + pos_pred - tp).

Conventions (the name goes into every record):
- ``d2-v0.6`` (default; the official ``GeneralizedSemSegEvaluator`` / detectron2 0.6 ``SemSegEvaluator``):
  mIoU = sum of IoU over classes with pos_gt > 0, divided by the number of classes with
  pos_gt + pos_pred > 0. A class predicted but absent from the ground truth therefore counts as IoU 0; a
  class neither present nor predicted is left out. Its per-class IoU is reported as 0.0 here (the official
  dump shows NaN but averages it as 0), so the mean of the non-None per-class values is the mIoU.
- ``gt-present``: only classes present in the ground truth count; others are None.
Seen and unseen mIoU apply the same rule to each subset of the *same* matrix (so a seen pixel predicted as an
unseen class is a false positive of that unseen class); hIoU = 2 * seen * unseen / (seen + unseen)
(0 when either is 0). pAcc = sum(tp) / sum(pos_gt) over all classes. All values in percent, unrounded;
None where undefined (no class to average).

A matrix may carry one extra column, K x (K+1): column K counts labelled pixels that received no prediction at
all (an image missing from an external predictions file, or pixels no mask covered; `harness.eval.sem_seg_json`).
They count in pos_gt of their class (a miss) and in no class's pos_pred.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import ConfigError

CONVENTIONS: tuple[str, ...] = ("d2-v0.6", "gt-present")
DEFAULT_CONVENTION = "d2-v0.6"


def _as_matrix(matrix) -> np.ndarray:
    if hasattr(matrix, "numpy") and not isinstance(matrix, np.ndarray):  # ConfusionMatrix or tensor
        matrix = matrix.numpy() if not hasattr(matrix, "detach") else matrix.detach().cpu().numpy()
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2 or m.shape[1] not in (m.shape[0], m.shape[0] + 1):
        raise ValueError(f"a confusion matrix must be K x K (or K x K+1 with a no-prediction column), got shape "
                         f"{m.shape}")
    return m


def per_class_iou(matrix, convention: str = DEFAULT_CONVENTION) -> np.ndarray:
    """IoU per class in [0, 1]; NaN where the class does not count under `convention`."""
    check_convention(convention)
    return iou_from_counts(*class_counts(matrix), convention)


def class_counts(matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, pos_gt, pos_pred) per class of a matrix, int64: every metric depends on the matrix only through these
    three vectors, which is why per-image counts of them (`harness.eval.per_image`) reproduce every metric."""
    m = _as_matrix(matrix)
    k = m.shape[0]
    return np.diag(m[:, :k]).copy(), m.sum(axis=1), m[:, :k].sum(axis=0)  # pos_gt with the no-prediction column


def iou_from_counts(tp, pos_gt, pos_pred, convention: str = DEFAULT_CONVENTION) -> np.ndarray:
    """IoU per class in [0, 1] from the three count vectors (any leading batch axes: bootstrap resamples)."""
    tp, pos_gt, pos_pred = (np.asarray(v, dtype=np.float64) for v in (tp, pos_gt, pos_pred))
    iou = np.full(pos_gt.shape, np.nan)
    present = pos_gt > 0
    iou[present] = tp[present] / (pos_gt[present] + pos_pred[present] - tp[present])
    if convention == "d2-v0.6":
        iou[(~present) & (pos_pred > 0)] = 0.0
    return iou


def _mean(values: np.ndarray) -> float | None:
    counted = values[~np.isnan(values)]
    return float(counted.mean() * 100) if counted.size else None


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    """hIoU from seen and unseen mIoU (0 when either is 0; None when either is undefined)."""
    if a is None or b is None:
        return None
    return 0.0 if a == 0 or b == 0 else 2 * a * b / (a + b)


def check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown mIoU convention {convention!r}; choose one of {', '.join(CONVENTIONS)}.")


def compute_metrics(matrix, seen: Sequence[int] | None = None, unseen: Sequence[int] = (),
                    convention: str = DEFAULT_CONVENTION, class_names: Sequence[str] | None = None) -> dict:
    """The record's metrics from one K x K ``matrix[gt, pred]`` (numpy, tensor or ConfusionMatrix; K x K+1 with
    a no-prediction column, see above).

    Keys: ``miou``, ``pacc``, ``per_class_iou`` (class name -> percent or None); with unseen classes also
    ``miou_seen``, ``miou_unseen``, ``hiou``. `seen` defaults to every class not in `unseen`.
    """
    return metrics_from_counts(*class_counts(matrix), seen=seen, unseen=unseen, convention=convention,
                               class_names=class_names)


def metrics_from_counts(tp, pos_gt, pos_pred, seen: Sequence[int] | None = None, unseen: Sequence[int] = (),
                        convention: str = DEFAULT_CONVENTION, class_names: Sequence[str] | None = None) -> dict:
    """`compute_metrics` from the per-class count vectors (int64) instead of the matrix: the same operations in
    the same order, so the same counts give bit-identical numbers."""
    check_convention(convention)
    tp, pos_gt, pos_pred = (np.asarray(v, dtype=np.int64) for v in (tp, pos_gt, pos_pred))
    k = tp.shape[0]
    iou = iou_from_counts(tp, pos_gt, pos_pred, convention)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}-class confusion matrix")
    metrics: dict = {
        "miou": _mean(iou),
        "pacc": float(tp.sum() / pos_gt.sum() * 100) if pos_gt.sum() else None,
    }
    unseen = sorted(set(int(u) for u in unseen))
    if unseen:
        seen_ids = sorted(set(int(s) for s in seen)) if seen is not None else [i for i in range(k) if i not in unseen]
        overlap = set(seen_ids) & set(unseen)
        if overlap or any(not 0 <= i < k for i in (*seen_ids, *unseen)):
            raise ValueError(f"seen/unseen ids must be disjoint and within 0..{k - 1} (overlap {sorted(overlap)})")
        metrics["miou_seen"] = _mean(iou[seen_ids])
        metrics["miou_unseen"] = _mean(iou[unseen])
        metrics["hiou"] = harmonic_mean(metrics["miou_seen"], metrics["miou_unseen"])
    metrics["per_class_iou"] = {n: (None if np.isnan(v) else float(v * 100)) for n, v in zip(names, iou)}
    return metrics
