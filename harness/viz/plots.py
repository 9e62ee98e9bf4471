"""Speed against accuracy from suite records: one point per method (and accuracy benchmark), FPS vs hIoU.

Speed and accuracy come from different cells of a suite (a speed cell and a segmentation cell of the same
method row, e.g. Table 1's ``coco-stuff-speed`` and ``coco-stuff``). They are paired by method; among several
speed cells of a method, the one of the same setting is taken, then the one timed with the accuracy
benchmark's classes (``task_options.classes`` = the dataset); a pair that stays ambiguous is left out and named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from ..errors import RecordError
from ..results import uses_random_weights
from ..tables import METRIC_LABELS, record_value
from .figures import WARNING_COLOUR, save
from .palette import class_colour

# The file formats matplotlib writes without extra packages (checked before any record is read).
PLOT_FORMATS = tuple(f".{ext}" for ext in sorted(FigureCanvasBase.get_supported_filetypes()))

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass(frozen=True)
class Point:
    method: str
    x: float
    y: float
    accuracy_benchmark: str
    speed_benchmark: str
    setting: str | None


def pair_points(records: Sequence[dict[str, Any]], x: str = "fps", y: str = "hiou",
                ) -> tuple[list[Point], list[str]]:
    """The (x, y) pairs of every method with both (see the module docstring), and notes on what was left out."""
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    with_x = [r for r in ok if record_value(r, x) is not None]
    with_y = [r for r in ok if record_value(r, y) is not None]
    points, notes = [], []
    for acc in with_y:
        candidates = [r for r in with_x if r["method"] == acc["method"]]
        if any(r is acc for r in candidates):  # both figures in one record
            candidates = [acc]
        for key, wanted in (("setting", acc.get("setting")), ("classes", acc.get("dataset"))):
            matching = [r for r in candidates if _speed_key(r, key) == wanted]
            if len(candidates) > 1 and matching:
                candidates = matching
        if not candidates:
            notes.append(f"{acc['method']} ({acc['benchmark']}): no record with {x}")
            continue
        if len(candidates) > 1:
            notes.append(f"{acc['method']} ({acc['benchmark']}): {len(candidates)} records with {x} "
                         f"({', '.join(r['benchmark'] for r in candidates)}) and no way to choose; left out")
            continue
        speed = candidates[0]
        points.append(Point(method=acc["method"], x=record_value(speed, x), y=record_value(acc, y),
                            accuracy_benchmark=acc["benchmark"], speed_benchmark=speed["benchmark"],
                            setting=acc.get("setting")))
    return points, notes


def speed_accuracy_plot(records: Sequence[dict[str, Any]], path: str | Path, x: str = "fps", y: str = "hiou",
                        ) -> list[Point]:
    """Write the scatter plot of ``y`` against ``x`` per method to ``path`` (any matplotlib format: .png, .pdf,
    .svg) and return its points. Raises `RecordError` when no method has both figures."""
    fig, points = speed_accuracy_figure(records, x, y)
    save(fig, Path(path))
    return points


def speed_accuracy_figure(records: Sequence[dict[str, Any]], x: str = "fps", y: str = "hiou",
                          ) -> tuple[Figure, list[Point]]:
    """The figure of `speed_accuracy_plot` and its points, unsaved."""
    points, notes = pair_points(records, x, y)
    if not points:
        have_x = sorted({r["method"] for r in records if record_value(r, x) is not None})
        have_y = sorted({r["method"] for r in records if record_value(r, y) is not None})
        raise RecordError(f"no method has both {x} and {y} in these records ({x}: {have_x or 'none'}; {y}: "
                          f"{have_y or 'none'}). Plot a directory with speed and accuracy cells of the same "
                          "methods, e.g. the results of suites/table1_zero_shot.yaml.")
    methods = list(dict.fromkeys(p.method for p in points))
    benchmarks = list(dict.fromkeys(p.accuracy_benchmark for p in points))
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    for p in points:
        colour = np.array(class_colour(methods.index(p.method))) / 255.0
        ax.scatter([p.x], [p.y], s=60, color=colour, edgecolor="black", linewidth=0.5,
                   marker=MARKERS[benchmarks.index(p.accuracy_benchmark) % len(MARKERS)])
        label = p.method if len(benchmarks) == 1 else f"{p.method} ({p.accuracy_benchmark})"
        ax.annotate(label, (p.x, p.y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    xs = [p.x for p in points]
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"{METRIC_LABELS.get(x, x)} (higher is faster)" if x == "fps" else METRIC_LABELS.get(x, x))
    ax.set_ylabel(METRIC_LABELS.get(y, y) + (" (%)" if y in ("hiou", "miou", "miou_seen", "miou_unseen") else ""))
    ax.grid(True, alpha=0.3)
    ax.margins(0.15)  # room for the method names beside the outermost points
    if len(benchmarks) > 1:
        from matplotlib.lines import Line2D

        ax.legend(handles=[Line2D([], [], linestyle="", marker=MARKERS[i % len(MARKERS)], color="grey", label=b)
                           for i, b in enumerate(benchmarks)], fontsize=8, title="accuracy on", title_fontsize=8)
    title = f"{METRIC_LABELS.get(y, y)} vs {METRIC_LABELS.get(x, x)}"
    random = sorted({r["method"] for r in records if uses_random_weights(r) and r["method"] in methods})
    if random:
        title += f"\nrandom weights in {', '.join(random)}: code-path numbers, not the method's"
    devices = sorted({str((r.get("speed") or {}).get("device") or (r.get("env") or {}).get("device"))
                      for r in records if record_value(r, x) is not None} - {"None"})
    if devices:
        title += f"\nspeed on {', '.join(devices)}"
    ax.set_title(title, fontsize=9, color=WARNING_COLOUR if random else "black")
    if notes:
        import textwrap

        # a suplabel, so that the constrained layout makes room for it under the axis label
        fig.supxlabel(textwrap.fill("left out: " + "; ".join(notes), 130), fontsize=6, ha="left", x=0.01)
    return fig, points


def _speed_key(record: dict[str, Any], key: str) -> Any:
    """The record's setting, or the dataset whose classes a speed cell was timed with."""
    return record.get("setting") if key == "setting" else (record.get("task_options") or {}).get("classes")


