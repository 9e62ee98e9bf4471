"""The stage cache: a training stage's output is stored under the hash of its spec and shared.

Every method of a suite that needs "the proposal network trained on COCO-Stuff seen classes with these
settings" asks for the same spec, gets the same hash, and so reuses one network: ablations compare heads, not
luck in proposal training, and cost one training instead of six. A stage directory holds ``spec.json``,
the stage's own files (``final.pt``, the resumable ``last.pt`` while it trains) and, once complete,
``done.json``. An interrupted stage resumes from its checkpoint the next time it is asked for.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import distributed as dist_utils


def spec_hash(spec: dict[str, Any]) -> str:
    blob = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_dir(cache_dir: Path, stage: str, spec: dict[str, Any]) -> Path:
    return Path(cache_dir) / stage / spec_hash(spec)


def run_stage(cache_dir: Path, stage: str, spec: dict[str, Any], build: Callable[[Path], dict[str, Any]],
              log=print) -> tuple[Path, dict[str, Any]]:
    """Return (directory, metadata) of the completed stage, building it with ``build(directory)`` if needed.

    ``build`` trains (resuming from files it left in the directory) and returns metadata to store; every rank
    calls it under DDP, rank 0 writes the completion marker.
    """
    directory = stage_dir(cache_dir, stage, spec)
    done = directory / "done.json"
    if done.exists():
        meta = json.loads(done.read_text())
        return directory, {**meta, "cached": True}
    directory.mkdir(parents=True, exist_ok=True)
    if dist_utils.is_main():
        (directory / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True, default=str))
    log(f"stage {stage}: building {directory}")
    start = time.perf_counter()
    meta = build(directory)
    meta = {"stage": stage, "hash": directory.name, "wall_s": time.perf_counter() - start, **meta}
    if dist_utils.is_main():
        tmp = directory / ".done.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        tmp.replace(done)
    dist_utils.barrier()
    return directory, {**meta, "cached": False}
