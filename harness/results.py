"""Result records: one JSON object per cell, written atomically, with the environment it was measured in.

A record is the unit every other tool reads (tables, check, plots), so it is self-describing: the resolved
method spec, what weights each part loaded, the metric convention and the environment fingerprint. Values
are stored unrounded; rounding is the tables' business. The confusion matrix, when there is one, is stored
beside the record (``<stem>.confusion.npy``) so any metric can be recomputed without re-running.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import RecordError
from .paths import file_mode, path_name_problem, skipped_by_record_finder

SCHEMA = "deop-harness/record/v1"
REQUIRED_KEYS = (
    "schema", "suite", "method", "method_spec", "benchmark", "dataset", "profile", "metrics",
    "miou_convention", "speed", "weights", "env", "created", "status",
)
STATUSES = ("ok", "failed", "skipped")


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
            text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    sha = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).resolve().parent,
        capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return sha + ("-dirty" if dirty else "")


def environment(seed: int | None = None, device: str | None = None) -> dict[str, Any]:
    """The fingerprint that makes a number traceable: code version, library versions, device, threads."""
    env: dict[str, Any] = {
        "git_sha": _git_sha(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "seed": seed,
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["threads"] = torch.get_num_threads()
        env["cuda"] = torch.version.cuda
        if device and device.startswith("cuda") and torch.cuda.is_available():
            env["device_name"] = torch.cuda.get_device_name(torch.device(device))
        else:
            env["device_name"] = platform.processor() or platform.machine()
    except ImportError:  # a record can be written by tools that do not need torch
        env["torch"] = None
    env["device"] = device
    return env


def new_record(
    *,
    suite: str,
    method: str,
    method_spec: dict[str, Any],
    benchmark: str,
    dataset: str | None,
    profile: str,
    metrics: dict[str, Any] | None = None,
    miou_convention: str | None = None,
    speed: dict[str, Any] | None = None,
    weights: dict[str, Any] | None = None,
    seed: int | None = None,
    device: str | None = None,
    status: str = "ok",
    error: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a record with every field of the schema present (absent values are ``None``/empty)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "suite": suite,
        "method": method,
        "method_spec": method_spec,
        "benchmark": benchmark,
        "dataset": dataset,
        "profile": profile,
        "metrics": metrics or {},
        "miou_convention": miou_convention,
        "speed": speed or {},
        "weights": weights or {},
        "env": environment(seed=seed, device=device),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": status,
        "error": error,
    }
    if extra:
        clash = set(extra) & set(record)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} would overwrite record fields")
        record.update(extra)
    return record


def _json_default(obj: Any) -> Any:
    # numpy / torch scalars and arrays reach records through metrics; store them as plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def _sanitize(obj: Any) -> Any:
    # JSON has no NaN/inf: store them as null so the file stays valid JSON for every reader.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_sanitize(v) for v in obj]
    return obj


def uses_random_weights(record: dict[str, Any]) -> bool:
    """Whether a frozen part of the record's method has random weights (e.g. CLIP with ``clip_weights: random``):
    its numbers then test the code path, not the method; tables and plots say so. A part initialised at random
    and then trained (a proposal backbone "scratch") is not random weights, nor are the untrained stages of a
    timing record ("random (untrained: timing only)": speed does not depend on them). The proposal backbone is
    always trained with its network, so its initialisation never counts (records before it was called "scratch"
    say "random" there)."""

    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            return any(walk(v) for v in value.values())
        if isinstance(value, list):
            return any(walk(v) for v in value)
        return value == "random"

    weights = record.get("weights") or {}
    if isinstance(weights, dict):
        weights = {k: v for k, v in weights.items() if k != "proposal_backbone"}
    return walk(weights)


def confusion_path(record_path: Path | str) -> Path:
    """Where the confusion matrix of a record is stored."""
    path = Path(record_path)
    return path.with_name(path.stem + ".confusion.npy")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically (a killed process leaves the old file or the new one, never a torn one)."""
    _atomic_write_bytes(path, text.encode("utf-8"))


def write_record(path: Path | str, record: dict[str, Any], confusion: Any = None) -> Path:
    """Write ``record`` as JSON at ``path`` atomically (temp file + rename): readers see all or nothing.

    The confusion matrix, if given, is written first, so a record never points at a missing matrix.
    """
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"record lacks required keys {missing}; build it with new_record()")
    try:
        if confusion is not None:
            import io

            import numpy as np

            buf = io.BytesIO()
            np.save(buf, np.asarray(confusion, dtype=np.int64))
            _atomic_write_bytes(confusion_path(path), buf.getvalue())
            record = {**record, "confusion_file": confusion_path(path).name}
        text = json.dumps(_sanitize(record), indent=2, sort_keys=False, default=_json_default) + "\n"
        _atomic_write_bytes(path, text.encode("utf-8"))
    except PermissionError as exc:
        raise RecordError(
            f"cannot write the record {path}: permission denied ({exc.filename}). "
            f"Choose a writable output directory with --out."
        ) from exc
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EFBIG, errno.ENAMETOOLONG, errno.EDQUOT):
            raise RecordError(f"cannot write the record {path}: {exc.strerror}. Choose another --out.") from exc
        raise
    return path


def keep_unwritten_record(path: Path, record: dict[str, Any], confusion: Any = None) -> str:
    """After the record of a finished cell could not be written at ``path``: keep the result somewhere, and say
    where. First a record (and its matrix) under the temp folder, else the record itself as JSON in the message,
    so the work of the cell is never lost with the write."""
    rescue = (Path(tempfile.gettempdir()) / "harness-unwritten" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
              / str(record.get("cell") or path.stem)).with_suffix(".json")
    try:
        write_record(rescue, record, confusion=confusion)
        return f"The result was kept in {rescue}; copy it (and its .confusion.npy) to {path}."
    except (RecordError, OSError, ValueError):
        text = json.dumps(_sanitize(record), sort_keys=False, default=_json_default)
        return f"The result could not be kept in a file either; here it is (save it as {path}):\n{text}"


def load_record(path: Path | str) -> dict[str, Any]:
    """Load one record, with a clear error for a missing, corrupt or foreign file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"record {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"record {path} cannot be read ({exc}).") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            f"record {path} is corrupt: not valid JSON ({exc.msg} at line {exc.lineno}). "
            f"Delete it and re-run its suite (the cell will be recomputed)."
        ) from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise RecordError(
            f"{path} is not a harness record (schema {found!r}, expected {SCHEMA!r}). "
            f"Point the command at a directory written by `python -m harness run`."
        )
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise RecordError(f"record {path} lacks the fields {missing}; it is incomplete. Re-run its suite.")
    problem = _field_problem(record)
    if problem:
        raise RecordError(f"record {path} is damaged: {problem}. Delete it and re-run its suite.")
    record["_path"] = str(path)
    return record


def _field_problem(record: dict[str, Any]) -> str | None:
    """What makes a record's fields unusable (wrong types an edit or another tool left), or None."""
    if record["status"] not in STATUSES:
        return f"status {record['status']!r} is not one of {', '.join(STATUSES)}"
    for key in ("metrics", "speed", "weights", "method_spec"):
        if not isinstance(record[key], dict):
            return f"{key} is {type(record[key]).__name__}, not a mapping"
    if not isinstance(record["metrics"].get("per_class_iou", {}), dict):
        return "metrics.per_class_iou is not a mapping of class name to IoU"
    for key, value in record["metrics"].items():
        if key != "per_class_iou" and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"metrics.{key} is {value!r}, not a number"
    name = record.get("confusion_file")
    if name is not None and (not isinstance(name, str) or path_name_problem(name)):
        return f"confusion_file {name!r} is not a file name beside the record"
    return None


def load_confusion(record: dict[str, Any]):
    """The confusion matrix stored beside a loaded record (numpy int64), or None."""
    import numpy as np

    name = record.get("confusion_file")
    if not name or "_path" not in record:
        return None
    return np.load(Path(record["_path"]).with_name(name))


def iter_record_files(directory: Path | str) -> Iterator[Path]:
    """Record files under a directory (recursively, through symlinked folders, each real folder once), in a
    stable order. Hidden names and prediction folders are passed over; the suite refuses such names for cells
    (``harness.paths.skipped_by_record_finder`` is the one rule both follow), so every record run writes is found."""
    directory = Path(directory)
    found: list[Path] = []
    visited: set[str] = set()
    for folder, subfolders, files in os.walk(directory, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a link back up the tree: walk each real folder once
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = [d for d in subfolders if not skipped_by_record_finder(d)]
        found += [Path(folder) / f for f in files if f.endswith(".json") and not skipped_by_record_finder(f)]
    yield from sorted(found)


def load_records(directory: Path | str) -> list[dict[str, Any]]:
    """Every record under ``directory``; a corrupt one, or one whose confusion matrix does not reproduce its
    metrics, is an error that names it (never silently skipped)."""
    from .eval.evidence import confusion_problem
    from .eval.per_image import evidence_problem

    directory = Path(directory)
    if not directory.exists():
        raise RecordError(f"results directory {directory} does not exist. Run a suite first (python -m harness run).")
    records = [load_record(p) for p in iter_record_files(directory)]
    for record in records:
        problem = confusion_problem(record) or evidence_problem(record)
        if problem:
            raise RecordError(f"record {record['_path']}: {problem}. Re-run its suite: the cell is recomputed.")
    return records


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (checkpoints, stage files, prediction files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
