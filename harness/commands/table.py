"""Print the paper-style table of a results directory (or of a suite's default results directory).

With --paper, each measured value is followed by the paper's value and the difference: ``37.9 (38.2, -0.3)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "print the paper-style table of recorded results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="results directory, or a suite file (reads runs/<suite>/<profile>)")
    parser.add_argument("--profile", default=None, help="with a suite file: which profile's results")
    parser.add_argument("--layout", default=None, help="paper table layout (table1..table8); default: the suite's")
    parser.add_argument("--format", default="console", choices=("console", "md", "latex", "csv"))
    parser.add_argument("--paper", action="store_true", help="put the paper's numbers beside ours")
    parser.add_argument("--ci", nargs="?", const="pm", default=None, choices=("pm", "interval"),
                        help="follow each accuracy value with its 95%% bootstrap interval over images: ±half-width "
                             "(pm, the default) or [low, high] (interval); n/a for records without evidence")
    parser.add_argument("--output", default=None, help="write the table to this file instead of stdout")
    parser.add_argument("--plot", default=None, metavar="FILE",
                        help="also write FPS against hIoU (see --plot-metric) per method to FILE (.png/.pdf/.svg)")
    parser.add_argument("--plot-metric", default="hiou", choices=("hiou", "miou", "miou_seen", "miou_unseen", "pacc"),
                        help="the accuracy axis of --plot (default hiou; miou for the training-free family)")


def print_table(directory: Path, layout_name: str | None, fmt: str, paper: bool, output: str | None = None,
                ci: str | None = None) -> None:
    from ..results import load_records
    from ..tables import load_layout, render

    records = load_records(directory)
    if not records:
        print(f"(no records under {directory})")
        return
    if layout_name is None:  # the suite named in the records, if they agree on a table
        layouts = {r.get("table") for r in records} - {None}
        layout_name = layouts.pop() if len(layouts) == 1 else None
    text = render(records, load_layout(layout_name) if layout_name else None, fmt, paper, ci)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    else:
        print(text, end="")


def run(args: argparse.Namespace) -> int:
    from ..paths import check_output_file

    if args.output:
        check_output_file(args.output, "--output")
    if args.plot:
        from ..viz.plots import PLOT_FORMATS

        check_output_file(args.plot, "--plot", PLOT_FORMATS)
    source = Path(args.source)
    layout = args.layout
    if source.is_file() or source.suffix in (".yaml", ".yml"):
        from ..suite import load_suite

        suite = load_suite(source, profile=args.profile)
        source = Path("runs") / suite.name / suite.profile
        layout = layout or suite.table
    print_table(source, layout, args.format, args.paper, args.output, args.ci)
    if args.plot:
        from ..results import load_records
        from ..viz.plots import speed_accuracy_plot

        points = speed_accuracy_plot(load_records(source), args.plot, y=args.plot_metric)
        print(f"wrote {args.plot} ({len(points)} points)")
    return 0
