"""DESIGN's layering: `harness` never imports `methods` (methods plug in through the registries), so the two
packages have no cycle. Checked on the source, including imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "harness"


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_harness_never_imports_methods():
    files = sorted(HARNESS.rglob("*.py"))
    assert len(files) > 30
    offenders = [f"{path.relative_to(HARNESS.parent)}:{line}: {module}" for path in files
                 for line, module in _imported_modules(path) if module == "methods" or module.startswith("methods.")]
    assert offenders == [], "harness must reach methods through the registries:\n" + "\n".join(offenders)
