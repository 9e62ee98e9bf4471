"""The confusion matrix beside a record is the evidence behind its metrics: verified wherever records are read.

A matrix that is missing, truncated, of the wrong size, or whose per-class IoU, pixel accuracy or headline metrics
(mIoU, seen, unseen, hIoU under the record's convention) differ from the record's is a problem to name: ``table``,
``check`` and ``reference`` refuse such a record, and ``run`` recomputes its cell on resume.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import CONVENTIONS, DEFAULT_CONVENTION, compute_metrics, harmonic_mean, per_class_iou


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def confusion_problem(record: dict[str, Any]) -> str | None:
    """Why the record's stored confusion matrix does not back its metrics, or None when it does (or when the
    record has no matrix: speed records, failed cells)."""
    name = record.get("confusion_file")
    if not name or "_path" not in record:
        return None
    path = Path(record["_path"]).with_name(name)
    try:
        matrix = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return f"its confusion matrix {path} is missing"
    except (OSError, ValueError, EOFError) as exc:
        return f"its confusion matrix {path} cannot be read ({exc})"
    metrics = record.get("metrics") or {}
    stored = metrics.get("per_class_iou") or {}
    k = len(stored)
    if matrix.ndim != 2 or matrix.shape[0] != k or matrix.shape[1] not in (k, k + 1):  # K+1: no-prediction column
        return f"its confusion matrix {path} has shape {matrix.shape}, not {k} x {k} classes"
    convention = record.get("miou_convention") or DEFAULT_CONVENTION
    if convention not in CONVENTIONS:
        return f"it names an unknown mIoU convention {convention!r}"
    iou = per_class_iou(matrix, convention)
    for (cls, value), again in zip(stored.items(), iou):
        if not _close(value, None if np.isnan(again) else float(again * 100)):
            return f"its confusion matrix {path} gives IoU {again * 100:.4g} for {cls!r}, the record {value}"
    total = matrix.sum()
    pacc = float(np.trace(matrix[:, :k]) / total * 100) if total else None
    if "pacc" in metrics and not _close(metrics["pacc"], pacc):
        return f"its confusion matrix {path} gives pAcc {pacc}, the record {metrics['pacc']}"
    return _headline_problem(record, matrix, path)


HEADLINE = ("miou", "pacc", "miou_seen", "miou_unseen", "hiou")


def _headline_problem(record: dict[str, Any], matrix: np.ndarray, path: Path) -> str | None:
    """Every headline metric the record states, recomputed from the matrix (an edited hIoU is refused even when
    its per-class IoU is intact). The seen/unseen split is the record's dataset's, from the catalog; for a dataset
    the catalog does not know, seen and unseen are taken as stated and hIoU must be their harmonic mean."""
    from harness.errors import HarnessError
    from harness.registries import DATASETS

    metrics = record["metrics"]
    for key in HEADLINE:
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"its {key} is {value!r}, not a number"
    checked = [k for k in HEADLINE if k in metrics]
    unseen: tuple[int, ...] = ()
    if any(k in metrics for k in ("miou_seen", "miou_unseen", "hiou")):
        try:
            unseen = tuple(DATASETS.get(record.get("dataset")).unseen)
        except (HarnessError, TypeError):
            checked = [k for k in checked if k in ("miou", "pacc")]
            if "hiou" in metrics and not _close(metrics["hiou"], harmonic_mean(metrics.get("miou_seen"),
                                                                                metrics.get("miou_unseen"))):
                return f"its hiou {metrics['hiou']} is not the harmonic mean of its seen and unseen mIoU"
    names = list(metrics.get("per_class_iou") or {})
    try:
        again = compute_metrics(matrix, unseen=unseen, convention=record.get("miou_convention") or
                                DEFAULT_CONVENTION, class_names=names)
    except ValueError as exc:
        return f"its metrics cannot be recomputed from {path} ({exc})"
    for key in checked:
        if not _close(metrics[key], again.get(key)):
            return f"its confusion matrix {path} gives {key} {again.get(key)}, the record {metrics[key]}"
    return None
