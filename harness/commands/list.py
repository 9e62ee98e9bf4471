"""List what the harness knows: methods (kind, description), attention rules, datasets, tasks, suites and paper
tables, with where each is defined."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "list registered methods, attention rules, datasets, tasks, suites and paper tables"
KINDS = ("methods", "rules", "datasets", "tasks", "suites", "tables")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: all)")
    parser.add_argument("--origin", action="store_true", help="show where each entry is defined")


def run(args: argparse.Namespace) -> int:
    from ..registries import DATASETS, METHODS, TASKS, TOOLS
    from ..tables import PAPER_DIR

    suites_dir = Path(__file__).resolve().parents[2] / "suites"
    for kind in [args.kind] if args.kind else KINDS:
        print(f"{kind}:")
        if kind == "methods":  # each plugin's kind and one-line description (harness.api.MethodPlugin)
            names = METHODS.names()
            width = max((len(n) for n in names), default=0)
            kind_width = max((len(str(METHODS.get(n).kind)) for n in names), default=0)
            for name in names:
                plugin = METHODS.get(name)
                print(f"  {name:<{width}}  {plugin.kind:<{kind_width}}  {plugin.description}"
                      + (f"    {METHODS.origin(name)}" if args.origin else ""))
        elif kind == "rules":  # the attention rules a method's `ps` option names
            rules = TOOLS.get("attention-rules")()
            width = max((len(n) for n, _ in rules), default=0)
            for name, description in rules:
                print(f"  {name:<{width}}  {description}")
        elif kind in ("datasets", "tasks"):
            registry = {"datasets": DATASETS, "tasks": TASKS}[kind]
            for name in registry.names():
                print(f"  {name}" + (f"    {registry.origin(name)}" if args.origin else ""))
        elif kind == "suites":
            for path in sorted(p for p in suites_dir.glob("*.yaml") if not p.name.startswith("_")):
                print(f"  {path.relative_to(suites_dir.parent)}")
        else:
            for path in sorted(PAPER_DIR.glob("*.yaml")):
                print(f"  {path.stem}")
    return 0
