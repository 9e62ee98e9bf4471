"""Segment your own images with your own class names.

  python -m harness demo photo.jpg photos/ --classes "cat, grass, sky" [--method deop] [--weights ViT-B-16.pt]
                         [--stages-from runs/.../record.json --cache-dir cache] [--out demo] [--figure]

Per image, under --out: <name>_overlay.png (colour overlay, the image's size), <name>_labels.png (class ids as
pixel values, in the order of --classes), <name>_panel.png (image and overlay with a legend of pixel shares),
<name>_shares.json, and with --figure <name>_attention.png (paper Figs. 5/8: self-attention of chosen patches
with and without patch severance, the proposal mask and the CAL anchor heatmap). demo.json sums up the run.

Weights: by default the method's stages (proposal network, prompts, CAL) are untrained and, without --weights,
CLIP is random unless its pretrained weights are on this machine: the demo then runs end to end but its output
is noise, and it says so. Real output needs CLIP weights (--weights) and trained stages: --stages-from names a
segmentation record written by `harness run`, whose stages are loaded from --cache-dir.

Files that are not readable images are skipped (and named); the exit code is then 1. Images larger than
--max-side are shrunk first, and the demo says so.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "segment your own images with free-text class names (overlay, label PNG, pixel shares, figures)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or directories of images")
    parser.add_argument("--classes", required=True,
                        help='class names: "cat, grass, sky", a text file with one name per line, or dataset:NAME')
    parser.add_argument("--method", default=None, help="registered method (default: deop, or the record's)")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="CLIP weights: a file (open_clip checkpoint or OpenAI's ViT-B-16.pt), a tag, or random")
    parser.add_argument("--stages-from", default=None, metavar="RECORD",
                        help="a segmentation record of `harness run`: load the stages it trained from --cache-dir")
    parser.add_argument("--cache-dir", default=None, help="stage cache (default: $HARNESS_CACHE or ./cache)")
    parser.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="method option (YAML value), e.g. --option test_short_side=640 (repeatable)")
    parser.add_argument("--out", default="demo", help="output directory (default: ./demo)")
    parser.add_argument("--max-side", type=int, default=2048,
                        help="shrink larger images to this longer side first (default 2048)")
    parser.add_argument("--figure", action="store_true", help="also write the attention figure (one-pass methods)")
    parser.add_argument("--patches", nargs="+", default=None, metavar="X,Y",
                        help="pixels whose patches the figure shows (default: one per largest segment)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_options(items: list[str]) -> dict:
    import yaml

    from ..errors import ConfigError
    from ..yaml_lines import load_yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r} must be KEY=VALUE, e.g. --option test_short_side=640.")
        try:
            options[key.strip()] = load_yaml(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--option {item!r}: the value is not valid YAML ({exc}).") from None
    return options


def parse_patches(items: list[str] | None) -> list[tuple[int, int]] | None:
    from ..errors import ConfigError

    if items is None:
        return None
    patches = []
    for item in items:
        try:
            x, y = (int(v) for v in item.split(","))
        except ValueError:
            raise ConfigError(f"--patches {item!r}: give pixel coordinates as X,Y (e.g. 120,80).") from None
        patches.append((x, y))
    return patches


def run(args: argparse.Namespace) -> int:
    from ..devices import check_device
    from ..errors import ConfigError, DataError
    from ..paths import check_output_dir, check_weights_file
    from ..registries import TOOLS
    from ..viz.demo import MEANINGLESS_BANNER, run_demo
    from ..viz.inputs import collect_images, parse_classes

    load_demo_model = TOOLS.get("demo-model")

    names = parse_classes(args.classes)  # bad class lists fail before anything slow
    check_output_dir(args.out, "--out")
    check_device(args.device)
    if args.weights and Path(args.weights).is_file():  # a file (not a tag or 'random'): readable as weights?
        check_weights_file(args.weights, "--weights")
    patches = parse_patches(args.patches)
    if args.max_side < 32:
        raise ConfigError(f"--max-side {args.max_side} is too small; use at least 32 (default 2048).")
    files, notes = collect_images(args.images)
    for note in notes:
        print(note)
    if not files:
        raise DataError(f"no images to segment in {', '.join(args.images)}. Give image files or directories.")
    model = load_demo_model(method=args.method, options=parse_options(args.options), weights=args.weights,
                            stages_from=args.stages_from,
                            cache_dir=Path(args.cache_dir or os.environ.get("HARNESS_CACHE", "cache")),
                            device=args.device, seed=args.seed)
    print(f"{model.describe()}; classes: {', '.join(names)}")
    if model.meaningless:
        _banner(MEANINGLESS_BANNER, model.meaningless)
    summary = run_demo(model, files, names, Path(args.out), max_side=args.max_side, figure=args.figure,
                       patches=patches, progress=not args.no_progress)
    for result in summary.results:
        top = sorted(result.shares.items(), key=lambda kv: -kv[1])[:5]
        print(f"{result.source}: " + ", ".join(f"{n} {100 * s:.1f}%" for n, s in top))
    print(f"wrote {len(summary.results)} image(s) to {args.out} (summary: {summary.summary_path})")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} file(s): " + "; ".join(str(p) for p, _ in summary.skipped))
    if model.meaningless:
        _banner(MEANINGLESS_BANNER, model.meaningless)
    if not summary.results:
        raise DataError("none of the inputs could be read as an image; see the reasons above.")
    return 1 if summary.skipped else 0


def _banner(headline: str, reasons: list[str]) -> None:
    import sys
    import textwrap

    rule = "!" * 78
    lines = [rule, f"!! {headline}", *(textwrap.fill(r, 74, initial_indent="!!  - ", subsequent_indent="!!    ")
                                         for r in reasons), rule]
    print("\n".join(lines), file=sys.stderr)
