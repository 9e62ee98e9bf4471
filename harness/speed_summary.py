"""One row per speed record, whatever its benchmark: the GPU check's table (``nox -s gpu-speed``).

The paper-layout speed table (`harness table`) has the paper's two columns (ViT-B/16, ViT-L/14-336); the GPU check
also times eager against CUDA graphs, fp32 (TF32) against bf16, and throughput batches, each a benchmark of its
own. This lists them all: mode and batch, precision, whether the call was replayed from a CUDA graph (or why
not), FPS, ms, % of the measured peak and of the datasheet's, the stage that dominates, and the paired ratio
over SimBaseline where it was timed in the same group.

    python -m harness.speed_summary DIR [--format md|console]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tabulate import tabulate

from .errors import RecordError
from .results import load_records

COLUMNS = ("benchmark", "method", "mode", "batch", "precision", "graphs", "FPS", "ms/img", "% peak (measured)",
           "% peak (datasheet)", "dominant stage", "x SimBaseline")


def _graphs(prepared: dict[str, Any]) -> str:
    if "cuda_graphs" not in prepared:
        return "-"
    return "yes" if prepared["cuda_graphs"] else f"eager ({prepared.get('eager_reason', '?')[:40]})"


def _over_simbaseline(speed: dict[str, Any]) -> str:
    for cell, ratio in (speed.get("paired") or {}).get("fps_ratio", {}).items():
        if cell.endswith("/simbaseline") and ratio:
            return f"{ratio['median']:.2f}"
    return "-"


def summary_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in sorted(records, key=lambda r: (r["benchmark"], r["method"])):
        sp = r.get("speed") or {}
        if r.get("status", "ok") != "ok" or "fps" not in sp:
            rows.append([r["benchmark"], r["method"], r.get("status"), "", "", "", "", "", "", "", "", ""])
            continue
        stages = sp.get("stages_ms") or {}
        dominant = max(stages, key=stages.get) if stages else None
        share = f"{dominant} {100 * stages[dominant] / sum(stages.values()):.0f}%" if dominant else "-"
        rows.append([r["benchmark"], r["method"], sp.get("mode"), sp.get("batch_size"), sp.get("precision"),
                     _graphs(sp.get("prepared") or {}), f"{sp['fps']:.1f}", f"{sp['ms_per_image']:.2f}",
                     f"{sp['peak_percent']:.1f}" if "peak_percent" in sp else "-",
                     f"{sp['peak_percent_datasheet']:.1f}" if "peak_percent_datasheet" in sp else "-",
                     share, _over_simbaseline(sp)])
    return rows


def render(records: list[dict[str, Any]], fmt: str = "md") -> str:
    table = tabulate(summary_rows(records), headers=COLUMNS, tablefmt="github" if fmt == "md" else "simple")
    peaks = {(r["speed"].get("precision"), k): v for r in records for k, v in
             (r.get("speed") or {}).get("peak_measured_tflops", {}).items()}
    notes = [f"measured matmul peak ({kind}, best sample of the run): {v:.0f} TFLOP/s"
             for (_, kind), v in sorted(peaks.items(), key=lambda kv: kv[0][1])]
    return "\n".join([table, *dict.fromkeys(notes)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.speed_summary", description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--format", choices=("md", "console"), default="md")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.directory)
    except RecordError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not records:
        print(f"no records under {args.directory}", file=sys.stderr)
        return 2
    print(render(records, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
