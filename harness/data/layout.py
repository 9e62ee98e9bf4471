"""Finding and checking a prepared dataset on disk.

The data root is ``--data-root``, else the environment variable ``HARNESS_DATA``, else ``./datasets``.
`prepare` writes a manifest (``harness_prepared.json`` in the dataset's top folder) with the number of
samples per split; `verify_prepared` compares the files found with it and, when asked, reads every label
to check value ranges and image/label sizes. Every problem names the files concerned.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

from .info import SPLITS, DatasetInfo, SplitLayout
from .io import image_size, read_label

MANIFEST_NAME = "harness_prepared.json"
MAX_NAMED = 5  # files named in one error message


def data_root(root: str | Path | None = None) -> Path:
    """The data root: explicit argument, else $HARNESS_DATA, else ./datasets."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("HARNESS_DATA") or "datasets")


def top_dir(info: DatasetInfo) -> str:
    """The dataset's top folder under the data root (first component of its layout paths)."""
    return Path(info.layout.val.label_dir).parts[0]


def manifest_path(info: DatasetInfo, root: Path) -> Path:
    return root / top_dir(info) / f"{info.name}.{MANIFEST_NAME}"


def read_manifest(info: DatasetInfo, root: Path) -> dict | None:
    path = manifest_path(info, root)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"the prepare manifest {path} is unreadable ({exc}); delete it and re-run prepare.") from None


@dataclass(frozen=True)
class Sample:
    stem: str
    image: Path
    label: Path


def _missing_message(info: DatasetInfo, what: str, path: Path, root: Path) -> str:
    out = f" --out {root}" if root != data_root(None) else ""
    how = (
        f"Create it with `{info.prepare_command('PATH/TO/RAW')}{out}` (the raw download it expects is "
        f"described by `python -m harness prepare --help`)."
        if info.raw_format
        else f"This dataset has no converter here: place the official prepared files there ({info.source})."
    )
    variants = sorted(p.parent for p in Path(root).glob(f"_synthetic/*/.{info.name}.synthetic.json"))
    if info.synthetic and variants:  # `run` keeps each variant in its own folder (harness.tasks.common.dataset_root)
        how = (f"Runs generated it under {Path(root) / '_synthetic'}: pass one of these as --data-root: "
               + "; ".join(f"{v} ({v.joinpath(f'.{info.name}.synthetic.json').read_text().strip()})"
                           for v in variants[:MAX_NAMED]) + ".")
    return (
        f"dataset {info.name!r}: the {what} {path} does not exist (data root {root.resolve()}; set it with "
        f"--data-root or HARNESS_DATA). {how}"
    )


def _name_some(paths: list[str]) -> str:
    head = ", ".join(paths[:MAX_NAMED])
    return head + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")


def split_layout(info: DatasetInfo, split: str) -> SplitLayout:
    layout = info.layout.split(split)
    if layout is None:
        raise DataError(
            f"dataset {info.name!r} has no prepared {split!r} split; available: "
            f"{', '.join(s for s in SPLITS if info.layout.split(s) is not None)}."
        )
    return layout


def list_samples(info: DatasetInfo, split: str, root: str | Path | None = None) -> list[Sample]:
    """The (image, label) pairs of a prepared split, paired by file stem and sorted by stem.

    Labels drive the listing (an image without a label is not a sample: seen-only training maps leave out
    images with no seen pixel, and VOC's image folder is shared by the splits). A label without its image is
    an error naming the files.
    """
    root = data_root(root)
    layout = split_layout(info, split)
    image_dir, label_dir = root / layout.image_dir, root / layout.label_dir
    for what, path in (("label folder", label_dir), ("image folder", image_dir)):
        if not path.is_dir():
            raise DataError(_missing_message(info, f"{split} {what}", path, root))
    labels = sorted(p for p in label_dir.iterdir() if p.suffix == layout.label_suffix and not p.name.startswith("."))
    samples, orphans = [], []
    for label in labels:
        image = image_dir / f"{label.stem}{layout.image_suffix}"
        if image.is_file():
            samples.append(Sample(label.stem, image, label))
        else:
            orphans.append(image.name)
    if orphans:
        raise DataError(
            f"dataset {info.name!r} ({split}): {len(orphans)} label maps in {label_dir} have no image in "
            f"{image_dir}: missing {_name_some(orphans)}. Re-run `{info.prepare_command()}` (it resumes) or "
            f"restore the images."
        )
    if not samples:
        raise DataError(
            f"dataset {info.name!r} ({split}): no label maps (*{layout.label_suffix}) in {label_dir}. "
            f"Re-run `{info.prepare_command()}`."
        )
    return samples


def verify_prepared(info: DatasetInfo, root: str | Path | None = None, splits: tuple[str, ...] | None = None,
                    deep: bool = False, progress: bool | None = False) -> dict[str, int]:
    """Check a prepared dataset; returns the number of samples per split.

    Always: folders exist, every label has its image, counts match the prepare manifest (when there is one).
    `deep`: also read every label and image header: label values must be train ids of the split's classes or
    the ignore value, and label and image sizes must agree. Raises DataError naming the offending files.
    """
    root = data_root(root)
    wanted = splits or tuple(s for s in SPLITS if info.layout.split(s) is not None)
    manifest = read_manifest(info, root)
    counts: dict[str, int] = {}
    for split in wanted:
        samples = list_samples(info, split, root)
        counts[split] = len(samples)
        expected = (manifest or {}).get("splits", {}).get(split, {}).get("samples")
        if expected is not None and expected != len(samples):
            raise DataError(
                f"dataset {info.name!r} ({split}): found {len(samples)} samples in "
                f"{root / split_layout(info, split).label_dir}, but prepare wrote {expected} "
                f"(manifest {manifest_path(info, root)}). Files were added or removed since; re-run "
                f"`{info.prepare_command()}` to restore the split."
            )
        if deep:
            check_samples(info, split, samples, progress=progress)
    return counts


def check_samples(info: DatasetInfo, split: str, samples: list[Sample], progress: bool | None = False) -> None:
    """Read every label: values in range, size equal to its image. One DataError lists all problems."""
    from tqdm import tqdm

    k = len(info.split_class_names(split))
    out_of_range: list[str] = []
    size_mismatch: list[str] = []
    bad_values: set[int] = set()
    for s in tqdm(samples, desc=f"verify {info.name}/{split}", unit="img", disable=None if progress is None else not progress, leave=False):
        label = read_label(s.label)
        values = np.unique(label)
        bad = values[(values >= k) & (values != info.ignore_index)]
        if bad.size:
            out_of_range.append(s.label.name)
            bad_values.update(int(v) for v in bad[:10])
        if label.shape != image_size(s.image):
            size_mismatch.append(f"{s.label.name} {label.shape[0]}x{label.shape[1]} vs image "
                                 f"{'x'.join(map(str, image_size(s.image)))}")
    problems = []
    if out_of_range:
        problems.append(
            f"{len(out_of_range)} label maps hold values outside 0..{k - 1} and {info.ignore_index} "
            f"(e.g. {sorted(bad_values)[:10]}): {_name_some(out_of_range)}"
        )
    if size_mismatch:
        problems.append(f"{len(size_mismatch)} label maps differ in size from their image: "
                        f"{_name_some(size_mismatch)}")
    if problems:
        raise DataError(
            f"dataset {info.name!r} ({split}) is inconsistent: " + "; ".join(problems)
            + f". Delete the prepared folder and re-run `{info.prepare_command()}`."
        )
