"""Synthetic data is recorded with the parameters it was generated with, so a run never gets another size.

``<root>/.<name>.synthetic.json`` holds ``{n_train, n_val, size, seed}`` of the copy in the data root. When a run
asks for other parameters (``--set defaults.synthetic.n_train=40``), the copy is removed and regenerated: it is
deterministic and cheap, and a record must describe the data it was measured on. A copy without the file (made
before parameters were recorded) is regenerated as well, since nothing says what it holds.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .layout import top_dir


def params_path(root: Path, name: str) -> Path:
    return Path(root) / f".{name}.synthetic.json"


def recorded_params(root: Path, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads(params_path(root, name).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def reconcile_params(info, root: Path, params: dict[str, Any]) -> None:
    """Make the data root's copy of synthetic dataset ``info`` match ``params``: record them, and remove a copy
    generated with others (the caller then finds it unprepared and generates it). Call it under the data lock."""
    from ..results import atomic_write_text

    root = Path(root)
    top = root / top_dir(info)
    recorded = recorded_params(root, info.name)
    if recorded != params and top.exists():
        was = "unrecorded parameters" if recorded is None else ", ".join(f"{k}={v}" for k, v in recorded.items())
        print(f"{info.name} in {root} was generated with {was}; this run asks for "
              f"{', '.join(f'{k}={v}' for k, v in params.items())}: regenerating it.", file=sys.stderr)
        shutil.rmtree(top)
    if recorded != params:
        atomic_write_text(params_path(root, info.name), json.dumps(params, sort_keys=True))
