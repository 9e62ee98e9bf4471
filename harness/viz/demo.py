"""Segment images with free-text classes and write, per image: the colour overlay (``_overlay.png``, the
image's size), the label map (``_labels.png``, class ids as pixel values), the overlay beside the image with a
legend of colours and pixel shares (``_panel.png``), the shares as JSON (``_shares.json``) and, on request, the
attention figure (``_attention.png``). ``demo.json`` sums up the run: model, classes, images, skipped files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..api import Vocabulary
from ..errors import DataError
from .figures import attention_figure, demo_panel, save
from .inputs import read_image
from .overlay import blend_overlay, pixel_shares, save_label_png, save_rgb_png

MEANINGLESS_BANNER = "UNTRAINED OR RANDOM WEIGHTS: THIS OUTPUT IS MEANINGLESS"


@dataclass
class ImageResult:
    source: Path
    outputs: dict[str, Path]
    size: tuple[int, int]
    original_size: tuple[int, int]
    shares: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass
class DemoSummary:
    results: list[ImageResult] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    summary_path: Path | None = None


def run_demo(model: Any, files: Sequence[Path], class_names: Sequence[str], out_dir: Path, *,
             max_side: int, predict_max_size: int = 2560, figure: bool = False,
             patches: Sequence[tuple[int, int]] | None = None, progress: bool = True,
             log: Callable[[str], None] = tqdm.write) -> DemoSummary:
    """Segment every file (see the module docstring); unreadable files are skipped and reported."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(class_names)
    warning = MEANINGLESS_BANNER if model.meaningless else None
    summary = DemoSummary()
    used: set[str] = set()
    for path in tqdm(files, desc="demo", unit="img", disable=not progress):
        try:
            loaded = read_image(path, max_side)
        except DataError as exc:
            summary.skipped.append((path, str(exc)))
            log(f"skipped {exc}")
            continue
        notes = []
        if loaded.resized:
            (h0, w0), (h, w) = loaded.original_size, loaded.pixels.shape[:2]
            notes.append(f"{path}: {w0}x{h0} is larger than the limit (--max-side {max_side}); segmented at "
                         f"{w}x{h}, and every output has that size.")
            log(notes[-1])
        stem = _unique_stem(path.stem, used)
        outputs, shares = segment_one(model, loaded.pixels, names, out_dir, stem,
                                      predict_max_size=predict_max_size, warning=warning, title=path.name)
        if figure:
            from ..registries import TOOLS

            attention_maps = TOOLS.get("attention-maps")

            maps = attention_maps(model.segmenter, loaded.pixels, names, patches=patches,
                                  max_size=predict_max_size)
            outputs["attention"] = save(attention_figure(maps, title=f"{path.name}: {model.method}",
                                                        warning=warning), out_dir / f"{stem}_attention.png")
        summary.results.append(ImageResult(source=path, outputs=outputs, size=loaded.pixels.shape[:2],
                                           original_size=loaded.original_size, shares=shares, notes=notes))
    summary.summary_path = _write_summary(model, names, out_dir, summary)
    return summary


def segment_one(model: Any, pixels: np.ndarray, names: list[str], out_dir: Path, stem: str, *,
                predict_max_size: int, warning: str | None, title: str) -> tuple[dict[str, Path], dict[str, float]]:
    """Predict one (H, W, 3) uint8 image and write its files; returns their paths by kind and the shares."""
    image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
    scores = model.segmenter.predict(image, Vocabulary(names=tuple(names)), max_size=predict_max_size)
    labels = scores.argmax(0).cpu().numpy().astype(np.int64)
    shares = pixel_shares(labels, len(names))
    overlay = blend_overlay(pixels, labels, len(names))
    outputs = {
        "overlay": save_rgb_png(overlay, out_dir / f"{stem}_overlay.png"),
        "labels": save_label_png(labels, out_dir / f"{stem}_labels.png", len(names)),
        "panel": save(demo_panel(pixels, overlay, names, shares, f"{title}: {model.method}", warning),
                      out_dir / f"{stem}_panel.png"),
    }
    by_name = {n: float(s) for n, s in zip(names, shares)}
    record = {"image": title, "size": list(labels.shape), "classes": names, "shares": by_name,
              "label_ids": {n: i for i, n in enumerate(names)}, "meaningless": model.meaningless}
    path = out_dir / f"{stem}_shares.json"
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    outputs["shares"] = path
    return outputs, by_name


def _unique_stem(stem: str, used: set[str]) -> str:
    """Two inputs named alike (a/x.png, b/x.jpg) must not overwrite each other's outputs."""
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def _write_summary(model: Any, names: list[str], out_dir: Path, summary: DemoSummary) -> Path:
    data: dict[str, Any] = {
        "method": model.method, "model": model.describe(), "weights": model.weights,
        "meaningless": model.meaningless, "classes": names,
        "images": [{"source": str(r.source), "size": list(r.size), "original_size": list(r.original_size),
                    "outputs": {k: str(v) for k, v in r.outputs.items()}, "shares": r.shares, "notes": r.notes}
                   for r in summary.results],
        "skipped": [{"source": str(p), "reason": reason} for p, reason in summary.skipped],
    }
    path = out_dir / "demo.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path
