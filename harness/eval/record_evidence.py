"""What a segmentation record keeps besides its metrics, and how readers get at it: the per-image evidence file,
bootstrap intervals (``metrics_ci``) and the headline metrics under both conventions (``metrics_by_convention``).

Records of earlier runs have neither evidence nor intervals: readers get None ("absent"), never an error; both
conventions are then recomputed from the stored confusion matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..results import load_confusion
from .bootstrap import BootstrapSettings, metric_intervals
from .metrics import CONVENTIONS, compute_metrics
from .per_image import HEADLINE, Evidence, evidence_bytes, evidence_path

# The benchmarks' datasets where the two conventions differ most (hundreds of classes, most absent from any one
# image's ground truth): their tables show both side by side.
BOTH_CONVENTIONS_DATASETS = ("pc_459", "ade_847")
CONVENTION_NOTE = ("mIoU a / b: d2-v0.6 / gt-present (a class predicted but absent from the ground truth counts "
                   "as IoU 0 / is left out); detectron2's version changes PC-459 by 4-5 points (fc-clip#27).")


def headline_by_convention(matrix, seen=None, unseen=()) -> dict[str, dict[str, float | None]]:
    """``metrics_by_convention``: the headline metrics of one matrix under every convention."""
    out = {}
    for convention in CONVENTIONS:
        metrics = compute_metrics(matrix, seen=seen, unseen=unseen, convention=convention)
        out[convention] = {k: metrics[k] for k in HEADLINE if k in metrics}
    return out


def evidence_fields(evidence: Evidence, convention: str, settings: BootstrapSettings) -> dict[str, Any]:
    """The record fields that come from the evidence (the intervals); the file itself is written by the runner."""
    return {"metrics_ci": metric_intervals(evidence, convention, settings)}


def write_evidence(record_path: Path | str, evidence: Evidence) -> dict[str, Any]:
    """Write ``<stem>.evidence.npz`` beside the record (atomically, before the record that names it); the
    record fields that name it and its size."""
    from ..results import _atomic_write_bytes

    data = evidence_bytes(evidence)
    path = evidence_path(record_path)
    _atomic_write_bytes(path, data)
    return {"evidence_file": path.name, "evidence_bytes": len(data), "evidence_images": evidence.n_images}


def convention_metrics(record: dict[str, Any]) -> dict[str, dict[str, float | None]] | None:
    """Both conventions' headline metrics of a record: stored, or recomputed from its confusion matrix (records of
    earlier runs); None without either."""
    stored = record.get("metrics_by_convention")
    if stored:
        return stored
    matrix = load_confusion(record) if record.get("status", "ok") == "ok" else None
    if matrix is None:
        return None
    names = list((record.get("metrics") or {}).get("per_class_iou") or {})
    unseen = _unseen_ids(record, names)
    return headline_by_convention(matrix, unseen=unseen)


def _unseen_ids(record: dict[str, Any], names: list[str]) -> list[int]:
    """Unseen class ids of an earlier record, from its catalog entry (only when its metrics have seen/unseen)."""
    if "miou_unseen" not in (record.get("metrics") or {}) or not record.get("dataset"):
        return []
    from ..data import get_info

    try:
        return list(get_info(record["dataset"]).unseen)
    except Exception:  # a dataset no longer in the catalog: the record's own convention still shows
        return []


def interval(record: dict[str, Any] | None, metric: str) -> list[float] | None:
    """The record's bootstrap interval of `metric` ([low, high], percent), or None (absent)."""
    ci = (record or {}).get("metrics_ci") or {}
    value = ci.get(metric)
    return value if isinstance(value, list) and len(value) == 2 else None


def interval_text(record: dict[str, Any] | None, metric: str, style: str) -> str:
    """``±0.8`` (half the interval's width) or ``[44.4, 46.0]``; ``±n/a`` where the record has no interval."""
    ci = interval(record, metric)
    if ci is None:
        return "±n/a" if style == "pm" else "[n/a]"
    low, high = ci
    return f"±{(high - low) / 2:.1f}" if style == "pm" else f"[{low:.1f}, {high:.1f}]"


CI_STYLES = ("pm", "interval")


def _shows_both_conventions(record: dict[str, Any] | None, metric: str) -> bool:
    return bool(record) and record.get("dataset") in BOTH_CONVENTIONS_DATASETS and metric in HEADLINE[:4]


def annotate(text: str, record: dict[str, Any] | None, metric: str | None, ci: str | None) -> str:
    """A table cell's text with what the evidence adds: on PC-459 / ADE-847 the other convention's value after
    `` / ``; with ``ci`` the bootstrap interval (``±n/a`` for records without evidence). Only accuracy metrics
    of a segmentation record are annotated."""
    if record is None or metric not in HEADLINE or record.get("task", "segmentation") != "segmentation":
        return text
    if _shows_both_conventions(record, metric):
        both = convention_metrics(record) or {}
        others = [c for c in CONVENTIONS if c != (record.get("miou_convention") or CONVENTIONS[0])]
        value = (both.get(others[0]) or {}).get(metric) if others else None
        text = f"{text} / {'-' if value is None else f'{value:.1f}'}"
    if ci:
        text = f"{text} {interval_text(record, metric, ci)}"
    return text


def evidence_caption(records: list[dict[str, Any]], ci: str | None) -> str:
    """Caption lines for what `annotate` added (empty when it added nothing)."""
    lines = []
    if any(_shows_both_conventions(r, "miou") for r in records):
        own = sorted({r.get("miou_convention") or CONVENTIONS[0] for r in records
                      if r.get("dataset") in BOTH_CONVENTIONS_DATASETS})
        lines.append(f"PC-459 / A-847 cells: {', '.join(own)} first, then the other convention. " + CONVENTION_NOTE)
    if ci:
        width = "± half the width of" if ci == "pm" else "[low, high]:"
        with_ci = [r for r in records if r.get("metrics_ci")]
        settings = with_ci[0]["metrics_ci"] if with_ci else {"resamples": 1000, "level": 0.95}
        lines.append(f"Intervals: {width} the {settings['level'] * 100:g}% percentile bootstrap interval over images "
                     f"({settings['resamples']} resamples); n/a: the record has no per-image evidence (an earlier "
                     "run).")
    return "".join(f"\n{line}" for line in lines)
