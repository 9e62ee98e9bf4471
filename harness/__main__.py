"""``python -m harness``: the command line. Thin: every command lives in ``harness/commands/<name>.py``.

Exit codes scripts can rely on: 0 success, 1 a result is bad (a cell failed, a check regressed),
2 unusable input (a bad suite, an unknown name, a corrupt record, missing data or weights).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import HarnessError

ORDER = ("run", "table", "check", "list", "prepare", "evaluate", "demo")


def _command_modules() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Reproduce the DeOP paper's tables: run suites of methods over benchmarks, print paper-style "
                    "tables beside the paper's numbers, and check results against stored references.",
        epilog="Exit codes: 0 success, 1 a cell failed or a check regressed, 2 unusable input.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules():
        module = importlib.import_module(f"{commands.__name__}.{name}")
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "__doc__", None) or module.HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: records written so far are kept; re-run the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
