"""Paths given on the command line, checked before a command starts any work.

Outputs (one check used by every command): a path under a regular file, a folder given where a file is wanted
(or the reverse), an unwritable folder or a file format nothing can write are errors that name the option and
the path, so nothing is computed and then lost. The checks create nothing; commands create folders on writing.
Inputs: a folder option that names a file, and a weights file that is no checkpoint at all (random bytes, a
truncated download), are errors with exit code 2 instead of a raw OS or torch error later.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError, WeightsError

MAX_TEXT_BYTES = 1 << 20  # suites, references, name and class files are KB; a bigger one is the wrong file


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _check_parent(path: Path, option: str) -> None:
    """The nearest existing folder above ``path`` must be a writable directory."""
    ancestor = _first_existing(path.parent)
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {path}: {ancestor} is a file, not a folder, so nothing can be written under "
                          f"it. Choose another path.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: the folder {ancestor} is not writable. Choose another path.")


PATH_MAX, NAME_MAX = 4096, 255  # Linux's limits, in bytes, on a path and on one of its components


def _check_length(path: Path, option: str) -> None:
    """A path the file system cannot hold is an error now (``exists()`` itself would raise ENAMETOOLONG)."""
    full = os.fsencode(os.path.abspath(path))
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if len(full) >= PATH_MAX or longest > NAME_MAX:
        raise ConfigError(f"{option} {str(path)[:80]}...: too long for the file system ({len(full)} bytes, a "
                          f"component of {longest}; limits {PATH_MAX} and {NAME_MAX}). Choose a shorter path.")


def check_output_file(path: str | Path, option: str, suffixes: Iterable[str] | None = None) -> Path:
    """``path`` can be written as a file (its folders are created on writing); ``suffixes``: the formats allowed."""
    path = Path(path)
    _check_length(path, option)
    if suffixes is not None:
        allowed = tuple(suffixes)
        if path.suffix.lower() not in allowed:
            raise ConfigError(f"{option} {path}: unknown file format {path.suffix or '(none)'!r}; use one of "
                              f"{', '.join(allowed)}.")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path} exists and is not writable. Choose another path.")
    _check_parent(path, option)
    return path


def check_output_dir(path: str | Path, option: str) -> Path:
    """``path`` is, or can be created as, a writable folder."""
    path = Path(path)
    _check_length(path, option)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder. Choose a folder (it is created if missing).")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} {path}: the folder is not writable. Choose another path.")
        return path
    _check_parent(path, option)
    return path


def check_input_dir(path: str | Path, option: str) -> Path:
    """``path`` is a folder or does not exist yet (e.g. a data root where synthetic data will be generated)."""
    path = Path(path)
    _check_length(path, option)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder. Give the folder (it is created if missing).")
    return path


def check_weights_file(path: str | Path, option: str) -> Path:
    """``path`` looks like a checkpoint torch or open_clip can read: a torch zip archive (also TorchScript, as
    OpenAI's ViT-B-16.pt), a legacy torch pickle, or safetensors. Reads a few bytes, never the weights."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{option} {path}: no such file. Give the CLIP weights file, e.g. ViT-B-16.pt.")
    with open(path, "rb") as fh:
        head = fh.read(16)
    safetensors = path.suffix == ".safetensors" and head[8:9] == b"{"
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80" or safetensors):
        raise WeightsError(f"{option} {path} is not a checkpoint this harness can read (not a torch or TorchScript "
                           f"archive, a torch pickle or safetensors; a truncated download looks like this too). "
                           f"Give OpenAI's ViT-B-16.pt or an open_clip checkpoint.")
    return path


def read_text_file(path: Path, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """A UTF-8 text file no larger than ``limit`` bytes (read no further), or a ConfigError saying which and why;
    OSError is left to the caller, which knows what a missing file means."""
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise ConfigError(f"{what} {path} is larger than {limit} bytes; check that it is the file you meant.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {raw[exc.start]:#x} at offset {exc.start}); "
                          f"save it as UTF-8.") from None


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0644 under the usual 022). Temp files from
    ``tempfile.mkstemp`` are 0600 whatever the umask; what we rename into place gets this mode instead, so records,
    matrices and predictions are as readable as any file the user writes."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# -- names that become path components ---------------------------------------------------------------------
# A suite's name and profile, and every benchmark, setting and method row name, become folders and files under
# --out (runs/<suite>/<profile>/<benchmark>/<setting>/<method>.json). The record finder skips hidden files and
# the prediction folders beside records, so a name that would be skipped is refused here: both read this list.
EVIDENCE_FOLDER_SUFFIX = ".predictions"  # run --save-predictions: <record stem>.predictions/ beside a record
MAX_NAME_LENGTH = 100  # file systems allow 255 bytes; the record's name adds ".confusion.npy" and temp affixes
_FORBIDDEN_CHARS = set('/\\:*?"<>|')


def skipped_by_record_finder(part: str) -> bool:
    """Whether the record finder passes over a path component of this name (hidden, or an evidence folder)."""
    return part.startswith(".") or part.endswith(EVIDENCE_FOLDER_SUFFIX)


def path_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one path component under --out, or None when it is a plain name."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if name != name.strip():
        return "must not start or end with spaces"
    bad = sorted({c for c in name if c in _FORBIDDEN_CHARS or not c.isprintable()})
    if bad:
        return f"must not contain {', '.join(map(repr, bad))} (it names a folder or file)"
    if skipped_by_record_finder(name):
        return (f"must not start with '.' or end with {EVIDENCE_FOLDER_SUFFIX!r} (its records would be hidden from "
                f"table, check and reference)")
    if len(name.encode("utf-8")) > MAX_NAME_LENGTH:
        return f"is {len(name.encode('utf-8'))} bytes long; at most {MAX_NAME_LENGTH} (it names a file)"
    return None


def refused_pickle_message(path: str | Path, exc: BaseException) -> str:
    """What to say when ``torch.load(weights_only=True)`` refuses a file: torch's own text advises
    ``weights_only=False``, which would run whatever the file names. Ours says what the file asks for instead."""
    import re

    asked = re.search(r"GLOBAL ([\w.]+)", str(exc))
    what = f" ({asked.group(1)})" if asked else ""
    return (f"{path} holds Python objects{what} that a weights file never needs; it was refused without running "
            f"them (a crafted pickle runs code). Use a checkpoint of tensors only, from the official source.")
