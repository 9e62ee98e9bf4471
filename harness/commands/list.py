"""List what the harness knows: methods (kind, description), attention rules, datasets, tasks, suites and paper
tables, with where each is defined."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "list registered methods, parts (attention rules ...) with their options, datasets, tasks, suites, tables"
KINDS = ("methods", "parts", "rules", "datasets", "tasks", "suites", "tables")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: all)")
    parser.add_argument("--origin", action="store_true", help="show where each entry is defined")


def run(args: argparse.Namespace) -> int:
    from ..registries import DATASETS, METHODS, TASKS
    from ..registry import BROKEN_PLUGINS
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
        elif kind in ("parts", "rules"):  # every part with its options; `rules`: the attention kind only
            print_parts(["attention"] if kind == "rules" else None, origin=args.origin)
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
    if BROKEN_PLUGINS:  # user plugins that failed to import (the rest above are usable)
        print("broken plugins:")
        for label, error in BROKEN_PLUGINS.items():
            print(f"  {label}: {error}")
    return 0


def print_parts(kinds: list[str] | None, *, origin: bool = False) -> None:
    """Each part kind, its parts (name, description) and their options (name, type, default, description)."""
    from ..parts import part_kinds, part_table
    from ..registries import PARTS

    for kind in PARTS.names():
        PARTS.get(kind)  # imports the module that registers the kind's in-tree parts
    for kind in kinds or part_kinds():
        if kinds is None:
            print(f"  {kind}:")
        table = part_table(kind)
        width = max((len(n) for n in table), default=0)
        for name, cls in table.items():
            where = f"    {cls.__module__}.{cls.__qualname__}" if origin else ""
            print(f"  {'  ' if kinds is None else ''}{name:<{width}}  {cls.description}{where}")
            for option, type_name, default, doc in cls.describe_options():
                print(f"  {'  ' if kinds is None else ''}{'':<{width}}    {option}: {type_name} = {default!r}  {doc}")
