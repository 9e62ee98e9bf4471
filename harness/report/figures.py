"""The report's pictures as data URIs (PNG, base64): nothing for the browser to fetch."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..viz.palette import class_colour

MAX_BAR_CLASSES = 40  # beyond this the bar chart keeps the classes where the methods differ most (said in its title)


def data_uri(fig: Figure, dpi: int = 90) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chosen_classes(per_method: dict[str, dict[str, float | None]]) -> tuple[list[str], int]:
    """The classes the bar chart shows (all, or the `MAX_BAR_CLASSES` with the widest spread between methods,
    in class order) and how many were left out."""
    classes = list(dict.fromkeys(c for values in per_method.values() for c in values))
    if len(classes) <= MAX_BAR_CLASSES:
        return classes, 0

    def spread(cls: str) -> float:
        values = [v[cls] for v in per_method.values() if v.get(cls) is not None]
        return max(values) - min(values) if values else -1.0

    keep = set(sorted(classes, key=lambda c: -spread(c))[:MAX_BAR_CLASSES])
    return [c for c in classes if c in keep], len(classes) - len(keep)


def per_class_bars(per_method: dict[str, dict[str, float | None]], title: str) -> str:
    """Grouped bars: one group per class, one bar per method (IoU in percent; a class a method does not count
    under its convention has no bar)."""
    classes, left_out = chosen_classes(per_method)
    methods = list(per_method)
    fig = Figure(figsize=(max(6.0, 0.28 * len(classes) * max(1, len(methods)) ** 0.5 + 2), 4.2),
                 layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(classes))
    for i, method in enumerate(methods):
        values = [per_method[method].get(c) for c in classes]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width,
               color=np.array(class_colour(i)) / 255.0, label=method)
    ax.set_xticks(x, classes, rotation=90, fontsize=7)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=min(len(methods), 4))
    note = f" ({len(classes)} classes where the methods differ most; {left_out} more in the table)" if left_out else ""
    ax.set_title(title + note, fontsize=9)
    return data_uri(fig)


def speed_accuracy(records: Sequence[dict], metric: str) -> str:
    """The speed-accuracy scatter of `harness.viz.plots` as a data URI (raises RecordError without pairs)."""
    from ..viz.plots import speed_accuracy_figure

    fig, _ = speed_accuracy_figure(records, y=metric)
    return data_uri(fig)
