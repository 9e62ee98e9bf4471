"""The report's sections, each a function of the records that returns HTML (escaped text, inline pictures).

Tables come from `harness.tables` (the same frames and caption the console prints, with the paper's numbers and
the intervals); per-class IoU from each record's ``metrics.per_class_iou``; speed from the ``speed`` sections;
provenance from ``env`` and the record fields that say how a number was made.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from ..errors import RecordError
from ..eval.record_evidence import evidence_caption
from ..tables import FLAG_MARK, build_frames, caption, generic_layout, load_layout, record_value
from . import figures

ACCURACY_AXES = ("hiou", "miou")  # the speed-accuracy plot's y axis: hIoU where records have it, else mIoU
REPORTED_PACKAGES = ("numpy", "torch", "torchvision", "open_clip_torch", "timm", "pandas", "matplotlib", "scipy")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _notes(lines: Sequence[str], all_warnings: bool = False) -> str:
    items = []
    for line in lines:
        warn = all_warnings or line.startswith(("WARNING", FLAG_MARK)) or "not the paper" in line.lower()
        items.append(f'<li class="{"warning" if warn else "note"}">{esc(line)}</li>')
    return f'<ul class="notes">{"".join(items)}</ul>' if items else ""


def _frame_html(frame, table_id: str) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in frame.values.tolist())
    return (f'<div class="scroll"><table class="results sortable" id="{esc(table_id)}"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table></div>")


def _layout_for(records: list[dict]):
    tables = {r.get("table") for r in records} - {None}
    if len(tables) == 1:
        try:
            return load_layout(tables.pop())
        except Exception:  # a table name without a paper layout: the generic one
            pass
    return generic_layout(records)


def paper_tables(run: str, records: list[dict], index: int) -> str:
    """The paper-layout table(s) of one run: ours (paper, ours - paper) ±interval, and every line of the
    console caption (random weights, flagged spreads, conventions, intervals)."""
    layout = _layout_for(records)
    frames = build_frames(records, layout, paper=True, ci="pm")
    lines = (caption(records, layout, True) + evidence_caption(records, "pm")).splitlines()
    parts = [f"<h3>{esc(lines[0])} <small>({esc(run)})</small></h3>", _notes(lines[1:])]
    for n, (setting, frame) in enumerate(frames.items()):
        if len(frames) > 1 or setting != "default":
            parts.append(f"<h4>Setting: {esc(setting)}</h4>")
        parts.append(_frame_html(frame, f"table-{index}-{n}"))
    return "\n".join(parts)


def problems(records: list[dict]) -> list[str]:
    """Every warning of the run in one list: the caption's (random weights, not the paper's setting), failed and
    skipped cells, every flagged speed figure."""
    lines = [line for line in caption(records, _layout_for(records), False).splitlines()[1:]
             if line.startswith("WARNING") or line.startswith("Not the paper")]
    for r in records:
        if r.get("status") in ("failed", "skipped"):
            lines.append(f"WARNING {r.get('cell')}: {r['status']}: {(r.get('error') or '').splitlines()[:1]}")
        for figure, why in sorted(((r.get("speed") or {}).get("flags") or {}).items()):
            lines.append(f"{FLAG_MARK} {r.get('cell')} {figure}: {why}")
    return lines


def _segmentation_groups(records: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("status", "ok") == "ok" and (r.get("metrics") or {}).get("per_class_iou"):
            groups.setdefault((r.get("suite"), r.get("benchmark"), r.get("setting", "default")), []).append(r)
    return groups


def per_class(records: list[dict], index: int) -> str:
    """Per benchmark: a sortable table of per-class IoU (classes x methods) and a bar chart of it."""
    parts = []
    for n, ((suite, bench, setting), recs) in enumerate(_segmentation_groups(records).items()):
        per_method = {r["method"]: r["metrics"]["per_class_iou"] for r in recs}
        classes = list(dict.fromkeys(c for v in per_method.values() for c in v))
        convention = ", ".join(sorted({r.get("miou_convention") or "d2-v0.6" for r in recs}))
        title = f"{bench} ({setting}, suite {suite}): per-class IoU (%), convention {convention}"
        head = "<th>class</th>" + "".join(f"<th>{esc(m)}</th>" for m in per_method)
        rows = []
        for cls in classes:
            cells = "".join(f"<td>{'-' if v.get(cls) is None else f'{v[cls]:.1f}'}</td>" for v in per_method.values())
            rows.append(f"<tr><td>{esc(cls)}</td>{cells}</tr>")
        chart = figures.per_class_bars(per_method, f"{bench} ({setting}): per-class IoU")
        parts.append(f"<h3>{esc(title)}</h3>"
                     f'<img class="chart" alt="per-class IoU bar chart of {esc(bench)}" src="{chart}">'
                     f'<details><summary>table of {len(classes)} classes (click a header to sort)</summary>'
                     f'<table class="perclass sortable" id="perclass-{index}-{n}"><thead><tr>{head}</tr></thead>'
                     f'<tbody>{"".join(rows)}</tbody></table></details>')
    return "\n".join(parts) or "<p>No segmentation records with per-class IoU.</p>"


def speed(records: list[dict]) -> str:
    """The speed-accuracy plot (when speed and accuracy cells of the same methods exist) and the breakdown."""
    parts = []
    for metric in ACCURACY_AXES:
        if any(record_value(r, metric) is not None for r in records):
            try:
                uri = figures.speed_accuracy(records, metric)
                parts.append(f'<img class="chart" alt="speed against {metric}" src="{uri}">')
            except RecordError as exc:
                parts.append(f'<p class="note">No speed-accuracy plot: {esc(exc)}</p>')
            break
    timed = [r for r in records if r.get("status", "ok") == "ok" and (r.get("speed") or {}).get("ms_per_image")]
    if timed:
        stages = list(dict.fromkeys(s for r in timed for s in (r["speed"].get("stages_ms") or {})))
        head = "".join(f"<th>{esc(h)}</th>" for h in
                       ["cell", "FPS", "ms/img", "GMAC", "device", "precision", *[f"{s} ms" for s in stages]])
        rows = []
        for r in timed:
            sp = r["speed"]
            cell = _speed_cell(sp.get("flags") or {})
            stage_ms = sp.get("stages_ms") or {}
            rows.append(f"<tr><td>{esc(r.get('cell'))}</td>{cell(sp.get('fps'), 'fps', '.3g')}"
                        f"{cell(sp.get('ms_per_image'), 'ms_per_image')}{cell(sp.get('gmac'), 'gmac')}"
                        f"<td>{esc(sp.get('device'))}</td><td>{esc(sp.get('precision'))}</td>"
                        + "".join(cell(stage_ms.get(s), f"stages_ms.{s}") for s in stages) + "</tr>")
        parts.append('<p class="note">Stage times: the median over separate instrumented passes (a GPU) or over the '
                     'timed calls themselves (a CPU: a record\'s <code>breakdown_in</code>); they need not '
                     f'sum to ms/img. {FLAG_MARK}: spread too wide to trust.</p>'
                     f'<div class="scroll"><table class="speed sortable" id="speed"><thead><tr>{head}</tr>'
                     f'</thead><tbody>{"".join(rows)}</tbody></table></div>')
    return "\n".join(parts) or "<p>No speed records.</p>"


def _speed_cell(flags: dict):
    """A cell writer for one record: the value, then the flag mark where the record flags that figure."""

    def cell(value, key, fmt=".1f"):
        text = "-" if value is None else format(value, fmt)
        return f"<td>{text}{' ' + FLAG_MARK if key in flags and value is not None else ''}</td>"

    return cell


def _distinct(records: list[dict], get) -> str:
    values = []
    for r in records:
        try:
            value = get(r)
        except (KeyError, TypeError, AttributeError):
            value = None
        if value not in (None, {}, ""):
            values.append(json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value))
    return ", ".join(dict.fromkeys(values)) or "-"


def provenance(runs: dict[str, list[dict]]) -> str:
    """Per run: what made its numbers. Then the package versions of the machine that wrote this report."""
    fields = [
        ("suite", lambda r: r["suite"]), ("profile", lambda r: r["profile"]),
        ("commit", lambda r: r["env"]["git_sha"]), ("python", lambda r: r["env"]["python"]),
        ("torch", lambda r: r["env"]["torch"]), ("device", lambda r: r["env"]["device_name"]),
        ("threads", lambda r: r["env"]["threads"]), ("seeds", lambda r: r["env"]["seed"]),
        ("convention", lambda r: r["miou_convention"]),
        ("name files / benchmark settings", lambda r: r.get("benchmark_settings")),
        ("CLIP weights", lambda r: (r["weights"].get("clip") or {}).get("source")
         or (r["weights"].get("clip") or {}).get("tag")),
        ("intervals", lambda r: {k: r["metrics_ci"][k] for k in ("method", "resamples", "level", "seed")}),
        ("per-image evidence", lambda r: f"{r['evidence_images']} images" if r.get("evidence_file") else None),
        ("created", lambda r: r["created"][:10]),
    ]
    parts = []
    for run, records in runs.items():
        rows = "".join(f"<tr><th>{esc(name)}</th><td>{esc(_distinct(records, get))}</td></tr>" for name, get in fields)
        parts.append(f"<h3>{esc(run)} <small>({len(records)} records)</small></h3>"
                     f'<table class="provenance">{rows}</table>')
    versions = []
    for package in REPORTED_PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    parts.append(f'<p class="note">This report was written with {esc(", ".join(versions))}.</p>')
    return "\n".join(parts)
