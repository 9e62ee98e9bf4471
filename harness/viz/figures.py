"""matplotlib layouts: the demo's overlay-with-legend panel and the attention figure (paper Figs. 5 and 8).

Figures are built with `matplotlib.figure.Figure` (no pyplot): no global state, no display backend, safe in
threads and tests. Builders return the Figure; `save` writes and releases it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .maps import AttentionMaps
from .palette import class_colour

WARNING_COLOUR = "#B00020"
LEGEND_ROWS = 24  # beyond this the legend lists the largest classes and counts the rest


def save(fig: Figure, path: Path, dpi: int = 100) -> Path:
    fig.savefig(path, dpi=dpi)
    fig.clear()
    return path


def legend_entries(class_names: Sequence[str], shares: np.ndarray) -> tuple[list[tuple[int, str]], int]:
    """(class index, "name  12.3%") for the legend, largest share first (ties in class order), and how many
    classes did not fit. Classes with no pixel are listed after the others."""
    order = sorted(range(len(class_names)), key=lambda i: (-float(shares[i]), i))
    shown = order[:LEGEND_ROWS]
    return [(i, f"{class_names[i]}  {100.0 * float(shares[i]):.1f}%") for i in shown], len(order) - len(shown)


def demo_panel(image: np.ndarray, overlay: np.ndarray, class_names: Sequence[str], shares: np.ndarray,
               title: str, warning: str | None = None) -> Figure:
    """Image | overlay, and a legend with each class's colour and pixel share."""
    h, w = image.shape[:2]
    box = 4.5  # each picture fits a box this many inches wide and high
    panel_w, panel_h = (box, max(box * h / w, 1.5)) if w >= h else (max(box * w / h, 1.5), box)
    fig = Figure(figsize=(2 * panel_w + 3.2, panel_h + (1.1 if warning else 0.6)), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, picture, name in zip(axes, (image, overlay), ("image", "segmentation")):
        ax.imshow(picture)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    entries, rest = legend_entries(class_names, shares)
    handles = [Patch(facecolor=np.array(class_colour(i)) / 255.0, edgecolor="black", linewidth=0.3, label=text)
               for i, text in entries]
    if rest:
        handles.append(Patch(facecolor="white", edgecolor="white", label=f"... {rest} more classes"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False, title="class  pixels")
    fig.suptitle(title if not warning else f"{title}\n{warning}", fontsize=10,
                 color=WARNING_COLOUR if warning else "black")
    return fig


def attention_figure(maps: AttentionMaps, title: str = "", warning: str | None = None) -> Figure:
    """One row per chosen patch: image with the patch | attention without severance | with the method's
    severance | proposal mask | anchor heatmap, each map over the greyed image (paper Figs. 5 and 8)."""
    image = maps.image
    h, w = image.shape[:2]
    grey = np.repeat(image.mean(-1, keepdims=True), 3, axis=-1).astype(np.uint8)
    columns = ("patch", "self-attention (no severance)", f"severance: {maps.severance}", "proposal mask",
               maps.heatmap_kind)
    rows = max(len(maps.patches), 1)
    cell = 2.4
    fig = Figure(figsize=(cell * len(columns) * max(w / h, 0.6), cell * rows + (0.9 if warning else 0.5)),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, len(columns), squeeze=False))
    ch, cw = maps.cell_size
    for r, patch in enumerate(maps.patches):
        name = maps.class_names[patch.class_index]
        grid_extent = (0.0, patch.vanilla.shape[1] * cw, patch.vanilla.shape[0] * ch, 0.0)
        ax = axes[r, 0]
        ax.imshow(image)
        x0, y0 = patch.cell[1] * cw, patch.cell[0] * ch
        ax.add_patch(Rectangle((x0, y0), cw, ch, fill=False, edgecolor="red", linewidth=1.5))
        ax.plot([patch.xy[0]], [patch.xy[1]], marker="+", color="red", markersize=8)
        ax.set_ylabel(f"{name}\nproposal {patch.proposal}", fontsize=8)
        _map(axes[r, 1], grey, patch.vanilla, grid_extent, note=f"CLS {patch.vanilla_cls:.2f}")
        if patch.severed is None:
            _map(axes[r, 2], grey, None, grid_extent, note="no severance: same as vanilla")
        else:
            _map(axes[r, 2], grey, patch.severed, grid_extent)
        _map(axes[r, 3], grey, patch.mask, (0.0, w, h, 0.0), vmax=1.0)
        _map(axes[r, 4], grey, patch.heatmap, grid_extent)
        for ax in axes[r]:
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            ax.set_xticks([])
            ax.set_yticks([])
    if not maps.patches:
        for ax in axes[0]:
            ax.set_axis_off()
    for c, label in enumerate(columns):
        axes[0, c].set_title(label, fontsize=8)
    text = title if not warning else f"{title}\n{warning}"
    if text:
        fig.suptitle(text, fontsize=9, color=WARNING_COLOUR if warning else "black")
    return fig


def _map(ax, grey: np.ndarray, values: np.ndarray | None, extent, vmax: float | None = None,
         note: str | None = None) -> None:
    """A map over the greyed image; each map scaled to its own maximum, as attention maps are drawn."""
    ax.imshow(grey)
    if values is not None:
        top = vmax if vmax is not None else max(float(np.max(values)), 1e-12)
        ax.imshow(values, extent=extent, cmap="jet", alpha=0.55, vmin=0.0, vmax=top, interpolation="nearest")
    if note:
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=7, color="white",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})
