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


def check_output_file(path: str | Path, option: str, suffixes: Iterable[str] | None = None) -> Path:
    """``path`` can be written as a file (its folders are created on writing); ``suffixes``: the formats allowed."""
    path = Path(path)
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
