"""The stage cache: a training stage's output is stored under the hash of its spec and shared.

Every method of a suite that needs "the proposal network trained on COCO-Stuff seen classes with these
settings" asks for the same spec, gets the same hash, and so reuses one network: ablations compare heads, not
luck in proposal training, and cost one training instead of six. A stage directory holds ``spec.json``,
the stage's own files (``final.pt``, the resumable ``last.pt`` while it trains) and, once complete,
``done.json``, which lists the size and sha256 of every file the stage wrote. An interrupted stage resumes from
its checkpoint the next time it is asked for.

Safe to share between processes: a stage is built under an exclusive file lock (``<cache>/.locks/<stage>-<hash>.lock``), so of two runs asking for the same stage at once one builds it and the other waits, then reuses it;
every file is written atomically (temp file + rename). A completed stage whose ``done.json`` or listed files do
not verify (truncated, deleted, edited) is named in a warning, moved aside and rebuilt.

The key includes a fingerprint of the training data (:func:`keyed_by_data`, set by the task around a method's
training): a re-prepared or changed data root never reuses stages trained on the old copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..results import atomic_write_text, file_sha256
from . import distributed as dist_utils

_DATA_FINGERPRINT: ContextVar[str | None] = ContextVar("stage_data_fingerprint", default=None)
DONE = "done.json"
# Files a stage leaves that are not its result (the resumable checkpoint, caches of the data it read).
UNLISTED = ("done.json", "spec.json", "last.pt")


def spec_hash(spec: dict[str, Any]) -> str:
    blob = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def keyed_by_data(fingerprint: str | None) -> Iterator[None]:
    """Stages built inside this block are keyed by ``fingerprint`` of the data they train on as well."""
    token = _DATA_FINGERPRINT.set(fingerprint)
    try:
        yield
    finally:
        _DATA_FINGERPRINT.reset(token)


def keyed_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as the cache keys it: with the training data's fingerprint when one is set."""
    fingerprint = _DATA_FINGERPRINT.get()
    return spec if fingerprint is None else {**spec, "data_fingerprint": fingerprint}


def stage_dir(cache_dir: Path, stage: str, spec: dict[str, Any]) -> Path:
    return Path(cache_dir) / stage / spec_hash(keyed_spec(spec))




def _file_list(directory: Path) -> dict[str, dict[str, Any]]:
    return {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(directory.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name not in UNLISTED}


def verify_stage(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(metadata, None) for a complete, intact stage; (None, why) for a corrupt one; (None, None) if not built."""
    done = directory / DONE
    if not done.exists():
        return None, None
    try:
        meta = json.loads(done.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{done} is unreadable ({exc})"
    if not isinstance(meta, dict):
        return None, f"{done} is not a JSON object"
    for name, expected in (meta.get("files") or {}).items():
        path = directory / name
        if not path.is_file():
            return None, f"{path} is missing"
        size = path.stat().st_size
        if size != expected.get("size") or file_sha256(path) != expected.get("sha256"):
            return None, f"{path} does not match its done.json ({size} bytes, {expected.get('size')} recorded)"
    return meta, None


@contextlib.contextmanager
def _exclusive(lock_path: Path, stage: str, log) -> Iterator[None]:
    """An exclusive lock across processes (rank 0 takes it under DDP; the others follow rank 0)."""
    if not dist_utils.is_main():
        dist_utils.barrier()  # until rank 0 holds the lock
        try:
            yield
        finally:
            dist_utils.barrier()
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"stage {stage}: another process is building it ({lock_path}); waiting for its result")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            dist_utils.barrier()
            yield
        finally:
            dist_utils.barrier()
            fcntl.flock(fh, fcntl.LOCK_UN)


def _move_aside(directory: Path, why: str, log) -> None:
    aside = directory.with_name(f"{directory.name}.corrupt")
    if aside.exists():
        shutil.rmtree(aside)
    directory.replace(aside)
    log(f"warning: the cached stage {directory} is corrupt: {why}. It was moved to {aside} and is rebuilt.")


def run_stage(cache_dir: Path, stage: str, spec: dict[str, Any], build: Callable[[Path], dict[str, Any]],
              log=print) -> tuple[Path, dict[str, Any]]:
    """Return (directory, metadata) of the completed stage, building it with ``build(directory)`` if needed.

    ``build`` trains (resuming from files it left in the directory), writes its files atomically and returns
    metadata to store; every rank calls it under DDP, rank 0 writes the completion marker.
    """
    spec = keyed_spec(spec)
    directory = Path(cache_dir) / stage / spec_hash(spec)
    with _exclusive(Path(cache_dir) / ".locks" / f"{stage}-{directory.name}.lock", stage, log):
        meta, problem = verify_stage(directory)
        if meta is not None:
            return directory, {**meta, "cached": True}
        if problem and dist_utils.is_main():
            _move_aside(directory, problem, log)
        dist_utils.barrier()
        directory.mkdir(parents=True, exist_ok=True)
        if dist_utils.is_main():
            atomic_write_text(directory / "spec.json", json.dumps(spec, indent=2, sort_keys=True, default=str))
        log(f"stage {stage}: building {directory}")
        start = time.perf_counter()
        meta = build(directory)
        meta = {"stage": stage, "hash": directory.name, "wall_s": time.perf_counter() - start, **meta}
        if dist_utils.is_main():
            meta["files"] = _file_list(directory)
            atomic_write_text(directory / DONE, json.dumps(meta, indent=2, default=str))
        dist_utils.barrier()
    return directory, {**meta, "cached": False}
