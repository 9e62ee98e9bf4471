"""Scoring detectron2's ``sem_seg_predictions.json`` (COCO RLE per class per image) against a prepared split.

The file's format is described in `harness.eval.prediction_files`. Entries are matched to the ground truth by
the stem of ``file_name`` (detectron2 writes the image's path, e.g. ``datasets/coco/val2017/000000000139.jpg``
-> ``000000000139``), ``category_id`` is mapped back to our train ids with `detectron2_category_ids`, and each
image's masks are painted into one label map, then scored with the same confusion matrix as PNG predictions.

Everything wrong is collected first and reported together, naming the file and the entries, before anything
is written: a file that is not this format, an RLE that does not decode, an RLE whose size differs from the
ground truth, a ``category_id`` the dataset does not have, two entries that claim the same pixels. An image
of the split with no entry is scored as missing: its labelled pixels count as misses of their class (the
matrix's no-prediction column, `harness.eval.metrics`), and the images are counted and listed. So are
labelled pixels that no mask covers. Entries of images outside the split are counted and ignored.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.info import DatasetInfo
from harness.data.io import read_label
from harness.data.layout import MAX_NAMED, list_samples, verify_prepared
from harness.errors import DataError

from .prediction_files import detectron2_category_ids
from .predictions import ScoredSplit

FORMAT_HELP = ("a JSON list of {\"file_name\", \"category_id\", \"segmentation\": {\"size\": [H, W], \"counts\"}} "
               "entries, as detectron2's SemSegEvaluator writes to <OUTPUT_DIR>/inference/sem_seg_predictions.json")


def _some(items: list[str]) -> str:
    return "; ".join(items[:MAX_NAMED]) + (f"; and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def rle_string_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools ``rleFrString``), checked.

    pycocotools decodes without bounds checks, so a damaged string would write past its mask: every string
    is parsed here first, and characters outside the alphabet, a truncated last run or a negative run raise
    ValueError.
    """
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("the string ends inside a run length")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[p]!r} at {p} is not in the RLE alphabet '0'..'o'")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise ValueError(f"run {len(runs)} has a negative length")
        runs.append(x)
    return runs


def _entry_problem(entry: Any) -> str | None:
    """Why `entry` is not a detectron2 entry, or None."""
    if not isinstance(entry, dict):
        return f"is a {type(entry).__name__}, not an object"
    missing = [k for k in ("file_name", "category_id", "segmentation") if k not in entry]
    if missing:
        return f"lacks {', '.join(missing)}"
    if not isinstance(entry["file_name"], str) or not entry["file_name"]:
        return "has a file_name that is not a non-empty string"
    if isinstance(entry["category_id"], bool) or not isinstance(entry["category_id"], int):
        return f"has category_id {entry['category_id']!r}, not an integer"
    seg = entry["segmentation"]
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        return "has a segmentation that is not an RLE object with size and counts"
    size = seg["size"]
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return f"has segmentation size {size!r}, not [H, W] with positive integers"
    counts = seg["counts"]
    if isinstance(counts, list):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            return "has uncompressed RLE counts that are not non-negative integers"
        runs = counts
    elif isinstance(counts, str):
        try:
            runs = rle_string_counts(counts)
        except ValueError as exc:
            return f"has RLE counts that do not decode ({exc})"
    else:
        return f"has RLE counts of type {type(counts).__name__} (a string or a list of integers expected)"
    if sum(runs) != size[0] * size[1]:
        return f"has RLE runs covering {sum(runs)} pixels, not {size[0]}x{size[1]} = {size[0] * size[1]}"
    return None


MAX_JSON_BYTES = 4 << 30


def read_sem_seg_json(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a detectron2 predictions file; DataError naming the file and entries if it is not one."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"--pred {path} is larger than {MAX_JSON_BYTES >> 30} GiB; a predictions file of the "
                            f"largest benchmark is a few hundred MB. Check that it is the file you meant.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise DataError(f"--pred {path} is nested too deeply to be a predictions file; expected {FORMAT_HELP}.") from None
    except FileNotFoundError:
        raise DataError(f"--pred {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--pred {path} cannot be read ({exc}).") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"--pred {path} is not JSON ({exc.msg} at line {exc.lineno}); expected {FORMAT_HELP}.") from None
    if not isinstance(data, list):
        raise DataError(f"--pred {path} holds a JSON {type(data).__name__}, not a list; expected {FORMAT_HELP}.")
    problems = [f"entry {i} {why}" for i, e in enumerate(data) if (why := _entry_problem(e)) is not None]
    if problems:
        raise DataError(f"--pred {path} is not a detectron2 sem_seg_predictions.json: {len(problems)} of "
                        f"{len(data)} entries are malformed: {_some(problems)}. Expected {FORMAT_HELP}.")
    return data


def _stem(file_name: str) -> str:
    """The image stem of detectron2's ``file_name`` (a POSIX or Windows path)."""
    return Path(re.split(r"[\\/]", file_name)[-1]).stem


def _decode(entry: dict[str, Any]) -> np.ndarray:
    from pycocotools import mask as mask_util

    h, w = entry["segmentation"]["size"]
    counts = entry["segmentation"]["counts"]
    if isinstance(counts, list):
        rle = mask_util.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
    with warnings.catch_warnings():  # pycocotools 2.0.x's numpy-2 copy= deprecation, once per call, not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_util.decode(rle).astype(bool)


def score_prediction_json(info: DatasetInfo, path: str | Path, split: str = "val",
                          root: str | Path | None = None, progress: bool | None = False) -> ScoredSplit:
    """One confusion matrix over every ground-truth label of `split` and the file's masks (see the module doc)."""
    from tqdm import tqdm

    path = Path(path)
    entries = read_sem_seg_json(path)
    verify_prepared(info, root, splits=(split,))
    samples = list_samples(info, split, root)
    class_names = info.split_class_names(split)
    k = len(class_names)
    to_train = {cid: t for t, cid in enumerate(detectron2_category_ids(info))}
    if split == "train" and info.zero_shot:  # seen-only labels: train ids index the seen classes
        to_train = {detectron2_category_ids(info)[c]: t for t, c in enumerate(info.seen)}
    gt_stems = {s.stem for s in samples}
    by_stem: dict[str, list[int]] = {}
    names_of_stem: dict[str, set[str]] = {}
    unknown: list[str] = []
    for i, e in enumerate(entries):
        stem = _stem(e["file_name"])
        by_stem.setdefault(stem, []).append(i)
        names_of_stem.setdefault(stem, set()).add(e["file_name"])
        if e["category_id"] not in to_train:
            unknown.append(f"entry {i} ({e['file_name']}): category_id {e['category_id']}")
    problems = []
    if unknown:
        ids = sorted(to_train)
        problems.append(f"{len(unknown)} entries have a category_id that {info.name}/{split} does not have (its "
                        f"ids: {ids[0]}..{ids[-1]}, {len(ids)} classes): {_some(unknown)}")
    clashes = [f"{stem}: {' and '.join(sorted(n)[:3])}" for stem, n in names_of_stem.items()
               if stem in gt_stems and len(n) > 1]
    if clashes:
        problems.append(f"{len(clashes)} images are named by different file_names with the same stem: {_some(clashes)}")
    if problems:
        raise DataError(f"--pred {path} does not fit {info.name}/{split}: " + "; ".join(problems) + ".")
    if entries and not gt_stems & set(by_stem):
        raise DataError(f"--pred {path}: none of its {len(by_stem)} images is in {info.name}/{split} (e.g. "
                        f"{entries[0]['file_name']!r} has stem {_stem(entries[0]['file_name'])!r}; the split's "
                        f"are like {samples[0].stem!r}). Is it the right dataset and split?")

    matrix = np.zeros((k, k + 1), dtype=np.int64)  # column k: labelled pixels without a prediction
    missing: list[str] = []
    wrong_size: list[str] = []
    overlaps: list[str] = []
    for s in tqdm(samples, desc=f"evaluate {info.name}/{split}", unit="img",
                  disable=None if progress is None else not progress):
        gt = read_label(s.label).astype(np.int64)
        valid = gt != info.ignore_index
        indices = by_stem.get(s.stem, [])
        if not indices:
            missing.append(s.stem)
        pred = np.full(gt.shape, -1, dtype=np.int64)
        owner = np.full(gt.shape, -1, dtype=np.int64)  # which entry painted each pixel, to name overlaps
        for i in indices:
            e = entries[i]
            size = tuple(e["segmentation"]["size"])
            if size != gt.shape:
                wrong_size.append(f"entry {i} ({e['file_name']}, category_id {e['category_id']}): RLE size "
                                  f"{size[0]}x{size[1]}, ground truth {gt.shape[0]}x{gt.shape[1]}")
                continue
            mask = _decode(e)
            taken = mask & (owner >= 0)
            if taken.any():
                others = sorted(set(owner[taken].tolist()))
                overlaps.append(f"image {s.stem}: entry {i} (category_id {e['category_id']}) claims "
                                f"{int(taken.sum())} pixels already claimed by entr{'y' if len(others) == 1 else 'ies'} "
                                f"{', '.join(map(str, others))}")
            free = mask & (owner < 0)
            pred[free] = to_train[e["category_id"]]
            owner[free] = i
        counted = valid & (pred >= 0)
        matrix[:, :k] += np.bincount(gt[counted] * k + pred[counted], minlength=k * k).reshape(k, k)
        matrix[:, k] += np.bincount(gt[valid & (pred < 0)], minlength=k)
    problems = []
    if wrong_size:
        problems.append(f"{len(wrong_size)} entries differ in size from the ground truth: {_some(wrong_size)}")
    if overlaps:
        problems.append(f"{len(overlaps)} entries overlap earlier ones (two entries claim the same pixel): "
                        f"{_some(overlaps)}")
    if problems:
        raise DataError(f"--pred {path} does not fit {info.name}/{split}: " + "; ".join(problems)
                        + ". Each image needs masks at its original size, one class per pixel.")
    unmatched = sum(1 for stem in by_stem if stem not in gt_stems)
    unseen = info.unseen if split == "val" else ()
    if not matrix[:, k].any():
        matrix = matrix[:, :k]  # every labelled pixel predicted: the usual square matrix
    return ScoredSplit(matrix, class_names, unseen, len(samples), unmatched, missing_images=tuple(missing))
