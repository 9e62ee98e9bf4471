"""A cheap fingerprint of a prepared split: what the stage cache keys trained stages by.

Its file list with every file's size and modification time (no content is read: a COCO train split is stat'ed
in about a second). Re-preparing, regenerating, truncating or editing any file changes it, so stages trained on
an old copy of the data are never reused for a new one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .layout import list_samples


def split_fingerprint(info, split: str, root: str | Path | None) -> str:
    digest = hashlib.sha256(f"{info.name}/{split}".encode())
    for sample in list_samples(info, split, root):
        for path in (sample.image, sample.label):
            stat = path.stat()
            digest.update(f"{sample.stem}:{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]
