"""Records -> pandas -> tabulate, in the layout of the paper's tables.

A layout (``results/paper/tableN.yaml``) lists the paper's columns (benchmark + metric) and rows (the paper's row
label, our suite row key, the paper's numbers). A measured value is looked up by (row key, benchmark, metric) in
the records. ``paper=True`` puts the paper's value and the difference beside each measured value: ``37.9 (38.2,
-0.3)``. One table per setting; rows measured but absent from the layout are appended. The caption says what was
measured: profile, and loudly when any number came from random weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from .errors import ConfigError
from .eval.record_evidence import annotate, evidence_caption
from .paths import read_text_file
from .results import uses_random_weights
from .yaml_lines import load_yaml

PAPER_DIR = Path(__file__).resolve().parents[1] / "results" / "paper"
FORMATS = ("console", "md", "latex", "csv")
GENERIC_METRICS = ("pacc", "hiou", "miou_seen", "miou_unseen", "miou", "recall@30", "recall@50", "fps",
                   "ms_per_image")
METRIC_LABELS = {"pacc": "pAcc", "hiou": "hIoU", "miou_seen": "Seen", "miou_unseen": "Unseen", "miou": "mIoU",
                 "fps": "FPS", "ms_per_image": "ms/img", "recall@30": "Recall@30", "recall@50": "Recall@50"}


def decimals(metric: str | None) -> int:
    """The paper prints FPS and recall (a 0-1 fraction in Table 8) with two decimals, every percentage with one."""
    return 2 if metric and (metric == "fps" or metric.startswith("recall@") or metric == "ratio") else 1


@dataclass(frozen=True)
class Column:
    label: str
    benchmark: str | None = None
    metric: str | None = None
    group: str | None = None
    key: str | None = None  # descriptive (unmeasured) columns such as "Passes"
    source: str | None = None  # where the paper numbers of this column come from, when not the table itself
    relative_to: str | None = None  # show metric / the same metric of this row (same benchmark and setting)
    mean_of: tuple[str, ...] | None = None  # the mean of `metric` over these benchmarks (all measured, else "-")
    record_key: str | None = None  # a descriptive column filled from the row's records (e.g. "names")

    @property
    def value_key(self) -> str:
        if self.metric is None:
            return self.key
        suffix = f"/{self.relative_to}" if self.relative_to else ""
        return f"{self.benchmark}.{self.metric}{suffix}"

    @property
    def header(self) -> str:
        return f"{self.group} {self.label}" if self.group else self.label


@dataclass(frozen=True)
class Row:
    label: str
    method: str | None
    values: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where this row's numbers were printed, when rows come from different places
    tuned: str = ""  # what the published settings change per dataset (the row is marked)


@dataclass(frozen=True)
class Layout:
    table: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    source: str = ""


def load_layout(name_or_path: str | Path) -> Layout:
    """A paper table layout by name (``table3``) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PAPER_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PAPER_DIR.glob("*.yaml"))
        raise ConfigError(f"no paper table layout {str(name_or_path)!r} (looked for {path}). Known: {', '.join(known)}.")
    data = load_yaml(read_text_file(path, "table layout"), str(path))
    try:
        columns = tuple(Column(**{**c, "mean_of": tuple(c["mean_of"])} if c.get("mean_of") else c)
                        for c in data["columns"])
        rows = tuple(Row(label=r["label"], method=r.get("method"), values=dict(r.get("values") or {}),
                         options=dict(r.get("options") or {}), source=r.get("source") or "",
                         tuned=r.get("tuned") or "") for r in data["rows"])
        return Layout(table=data["table"], title=data.get("title", data["table"]), columns=columns, rows=rows,
                      source=data.get("source", ""))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid table layout ({exc}); see results/paper/README.md.") from None


def generic_layout(records: list[dict]) -> Layout:
    """Columns = every (benchmark, metric) the records have, in a fixed metric order; rows = methods."""
    columns: list[Column] = []
    for bench in dict.fromkeys(r["benchmark"] for r in records):
        present = set()
        for r in records:
            if r["benchmark"] == bench:
                present |= {k for k, v in {**r["metrics"], **r["speed"]}.items() if isinstance(v, int | float)}
        columns += [Column(label=METRIC_LABELS[m], benchmark=bench, metric=m, group=bench)
                    for m in GENERIC_METRICS if m in present]
    rows = tuple(Row(label=m, method=m) for m in dict.fromkeys(r["method"] for r in records))
    return Layout(table="results", title="Results", columns=tuple(columns), rows=rows)


def record_value(record: dict, metric: str) -> float | None:
    """A metric of a record: from ``metrics``, else ``speed``; dotted names reach inside (``stages_ms.clip``)."""
    for section in ("metrics", "speed"):
        value: Any = record.get(section, {})
        for part in metric.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


FLAG_MARK = "!"  # after a value whose spread is too wide to trust (the record's speed.flags say why)
PAIRED_METRICS = {"fps": 1, "ms_per_image": -1}  # metric -> exponent applied to the paired fps ratio


def ratio_between(record: dict, over: dict, metric: str) -> tuple[float | None, str]:
    """(record's ``metric`` / over's, how it was obtained). Two speed records timed in one group (the same
    ``paired.group``) give their paired ratio for fps (ms_per_image: its inverse): the median of per-round ratios
    on the same images, load-robust; any other pair gives the plain ratio of the two figures ("unpaired")."""
    mine, theirs = (r.get("speed", {}).get("paired") or {} for r in (record, over))
    ratio = (mine.get("fps_ratio") or {}).get(over.get("cell")) if metric in PAIRED_METRICS else None
    if ratio and mine.get("group") == theirs.get("group"):
        return ratio["median"] ** PAIRED_METRICS[metric], f"paired, median of {ratio['rounds']} rounds"
    a, b = record_value(record, metric), record_value(over, metric)
    if a is None or not b:
        return None, "unpaired"
    return a / b, "unpaired"


def flag_of(record: dict | None, metric: str, over: dict | None = None) -> str | None:
    """Why a speed figure of ``record`` cannot be trusted (its ``flags``), or None. ``over``: the ratio of
    ``metric`` over that record (flagged by its own paired spread, or either figure's when unpaired)."""
    if record is None:
        return None
    flags = record.get("speed", {}).get("flags") or {}
    if over is not None:
        key = f"{metric}/{over.get('cell')}"
        if key in flags:
            return flags[key]
        if ratio_between(record, over, metric)[1] == "unpaired":
            return flag_of(record, metric) or flag_of(over, metric)
        return None
    return flags.get(metric) or flags.get(metric.split(".")[0])


def _fmt(value: float | None, metric: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric == "fps" and 0 < abs(value) < 1:  # CPU speeds: keep three significant digits, not 0.04
        return f"{value:.3g}"
    return f"{value:.{decimals(metric)}f}"


def _cell_text(measured: float | None, paper: Any, metric: str, with_paper: bool, status: str) -> str:
    ours = status if status in ("failed", "skipped") else _fmt(measured, metric)
    if not with_paper:
        return ours
    paper_value = paper if isinstance(paper, int | float) else None
    if paper_value is None:
        return f"{ours} (-)"
    if measured is None:
        return f"{ours} ({_fmt(paper_value, metric)})"
    diff = measured - paper_value
    return f"{ours} ({_fmt(paper_value, metric)}, {diff:+.{decimals(metric)}f})"


def build_frames(records: list[dict], layout: Layout, paper: bool = False,
                 ci: str | None = None) -> dict[str, pd.DataFrame]:
    """One frame of display strings per setting, rows and columns in the paper's order. ``ci`` (pm | interval):
    each accuracy value followed by its bootstrap interval (`harness.eval.record_evidence.annotate`)."""
    frames: dict[str, pd.DataFrame] = {}
    settings = list(dict.fromkeys(r.get("setting", "default") for r in records)) or ["default"]
    for setting in settings:
        recs = [r for r in records if r.get("setting", "default") == setting]
        by_key = {(r["method"], r["benchmark"]): r for r in recs}
        rows, row_records = _rows_with_records(layout, recs)
        table_rows = []
        for row, own in zip(rows, row_records):
            measured_any = any(c.benchmark in own for c in layout.columns if c.metric)
            if not measured_any and not paper:
                continue
            cells = {"Method": row.label + (" *" if row.tuned else "")}
            for col in layout.columns:
                if col.record_key is not None:
                    cells[col.header] = _record_text(row, col, own, paper)
                    continue
                if col.mean_of:
                    cells[col.header] = _mean_text(row, col, own, paper)
                    continue
                if col.metric is None:
                    cells[col.header] = str(row.values.get(col.key, "")) if row.values.get(col.key) is not None else ""
                    continue
                rec = own.get(col.benchmark)
                status = rec.get("status", "ok") if rec is not None else "missing"
                measured = record_value(rec, col.metric) if rec and status == "ok" else None
                flag = flag_of(rec, col.metric) if measured is not None else None
                if col.relative_to and measured is not None:
                    ref = by_key.get((col.relative_to, col.benchmark))
                    ok = ref is not None and ref.get("status") == "ok"
                    measured = ratio_between(rec, ref, col.metric)[0] if ok else None
                    flag = flag_of(rec, col.metric, ref) if ok and ref is not rec else None
                shown = "ratio" if col.relative_to else col.metric
                text = _cell_text(measured, row.values.get(col.value_key), shown, paper, status)
                if measured is not None and not col.relative_to:
                    text = annotate(text, rec, col.metric, ci)
                cells[col.header] = f"{text} {FLAG_MARK}" if flag and measured is not None else text
            table_rows.append(cells)
        frames[setting] = pd.DataFrame(table_rows, columns=["Method", *[c.header for c in layout.columns]])
    return frames


def _options_match(options: dict[str, Any], record: dict) -> bool:
    spec = record.get("method_spec") or {}

    def plain(value: Any) -> Any:
        return [plain(v) for v in value] if isinstance(value, list | tuple) else value

    return all(key in spec and plain(spec[key]) == plain(value) for key, value in options.items())


def _rows_with_records(layout: Layout, recs: list[dict]) -> tuple[list[Row], list[dict[str, dict]]]:
    """The table's rows and, for each, its records by benchmark. Where the layout has several rows of one method
    (NACLIP without and with PAMR), a record fills the rows whose `options` its resolved spec has, and one that
    fits none gets a row of its own (never printed under a row that describes other settings). A method with a
    single row takes its records whatever their options (those rows' options describe the paper's setting)."""
    rows_of: dict[str, int] = {}
    for row in layout.rows:
        if row.method:
            rows_of[row.method] = rows_of.get(row.method, 0) + 1
    rows = list(layout.rows)
    own: list[dict[str, dict]] = [{} for _ in rows]
    extra: dict[str, dict[str, dict]] = {}
    for record in recs:
        method = record["method"]
        fits = [i for i, row in enumerate(rows) if row.method == method
                and (rows_of[method] == 1 or _options_match(row.options, record))]
        for i in fits:
            own[i][record["benchmark"]] = record
        if not fits:
            extra.setdefault(method, {})[record["benchmark"]] = record
    for method, by_benchmark in extra.items():
        label = method if method not in rows_of else f"{method} (options unlike this table's {method} rows)"
        rows.append(Row(label=label, method=method))
        own.append(by_benchmark)
    return rows, own


def _record_text(row: Row, col: Column, own: dict[str, dict], with_paper: bool) -> str:
    """The distinct values of a record field over the row's records (e.g. the name file each cell used)."""
    found = set()
    for record in own.values():
        value: Any = record
        for part in (col.record_key or "").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            found.add(str(value))
    ours = sorted(found)
    text = "/".join(ours) or "-"
    paper_value = row.values.get(col.value_key)
    return f"{text} ({paper_value})" if with_paper and paper_value else text


def _mean_text(row: Row, col: Column, own: dict[str, dict], with_paper: bool) -> str:
    """The mean of the metric over `mean_of` benchmarks, shown only when every one of them was measured."""
    values = []
    for bench in col.mean_of or ():
        rec = own.get(bench)
        values.append(record_value(rec, col.metric) if rec and rec.get("status", "ok") == "ok" else None)
    measured = sum(values) / len(values) if values and all(v is not None for v in values) else None
    return _cell_text(measured, row.values.get(col.value_key), col.metric, with_paper, "ok")


def caption(records: list[dict], layout: Layout, paper: bool) -> str:
    parts = [layout.title]
    profiles = sorted({r.get("profile", "?") for r in records})
    datasets = sorted({str(r["dataset"]) for r in records if r.get("dataset")})
    if profiles:
        on = f" on {', '.join(datasets)}" if datasets else ""
        parts.append(f"Measured: profile {', '.join(profiles)}{on}, {len(records)} records.")
    random_parts = sorted({f"{r['method']}" for r in records if uses_random_weights(r)})
    if random_parts:
        parts.append("WARNING: random weights in " + ", ".join(random_parts) +
                     ": these numbers test the code path, not the method; they are not comparable to the paper.")
    elif any(p not in ("paper",) for p in profiles):
        parts.append("Not the paper's setting (profile is not 'paper'): compare orderings, not values.")
    speeds = [r.get("speed") or {} for r in records]
    if any("paired" in sp for sp in speeds):
        parts.append("Speed ratios between methods: paired (methods timed round by round on the same images; "
                     "median of the per-round ratios).")
    sources = {sp.get("breakdown_in", "passes") for sp in speeds if "stages_note" in sp}
    if sources:
        where = {"passes": "in separate instrumented passes", "rounds": "inside the timed calls (a CPU)"}
        parts.append(f"Stage times are measured {' or '.join(where[s] for s in sorted(sources))}, median; they "
                     f"need not sum to ms.")
    if any(sp.get("flags") for sp in speeds):
        parts.append(f"{FLAG_MARK}: the spread of this figure's measurements is too wide to trust (over the "
                     "cell's spread_limit; the record's speed.flags say why).")
    if paper:
        parts.append("Cells: ours (paper, ours - paper).")
        parts += [f"{c.header}: paper numbers from {c.source}." for c in layout.columns if c.source]
        parts += [f"{r.label}: printed in {r.source}." for r in layout.rows if r.source]
    parts += [f"* {r.label}: published settings chosen per dataset ({r.tuned})." for r in layout.rows if r.tuned]
    return "\n".join(parts)


def render(records: Iterable[dict], layout: Layout | None = None, fmt: str = "console", paper: bool = False,
           ci: str | None = None) -> str:
    """The table(s) as text in ``fmt`` (console, md, latex or csv); ``ci``: with bootstrap intervals."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    records = list(records)
    layout = layout or generic_layout(records)
    frames = build_frames(records, layout, paper, ci)
    out = []
    if fmt == "csv":
        for setting, frame in frames.items():
            frame = frame.copy()
            frame.insert(0, "setting", setting)
            out.append(frame.to_csv(index=False))
        return "".join(out)
    tablefmt = {"console": "simple", "md": "github", "latex": "latex_booktabs"}[fmt]
    out.append(caption(records, layout, paper) + evidence_caption(records, ci))
    for setting, frame in frames.items():
        if len(frames) > 1 or setting != "default":
            out.append(f"\nSetting: {setting}")
        out.append(tabulate(frame.values.tolist(), headers=list(frame.columns), tablefmt=tablefmt,
                            disable_numparse=True))
    return "\n".join(out) + "\n"
