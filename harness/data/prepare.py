"""Convert the official downloads into the prepared layout of the catalog (METHOD_SPEC §10).

What every converter does, as the official prepare scripts:
- maps raw label values to contiguous train ids through a lookup table; every raw value that is not a class
  of the dataset (COCO's 11 unused ids, VOC/Pascal-Context background 0, ADE "other" 0, 255) becomes ignore;
- writes the ``val`` split with all classes, and for a zero-shot dataset the ``train`` split with seen
  classes only (ids 0..#seen-1 in catalog order; unseen pixels -> ignore) (§10.1, §10.2);
- writes no label map when a converted map is entirely ignore (``prepare_*_sem_seg.py`` L207-209), so such
  images are not samples (detectron2's ``load_sem_seg`` intersects image and label lists);
- places each kept image beside (hard link, else copy).

Resumable: labels are written atomically and existing outputs are skipped. After converting, the split
counts go into a manifest and every written label is read back and checked (value range, size).

Raw layouts (``--raw`` points at):
- ``coco_stuff``: the COCO folder: ``{train2017,val2017}/*.jpg``, ``stuffthingmaps/{train2017,val2017}/*.png``
  (the ``stuffthingmaps_trainval2017.zip`` contents; values = COCO id - 1, 255 unlabeled).
- ``voc_aug``: the VOC2012 folder: ``JPEGImages/``, ``SegmentationClassAug/`` and the lists ``train.txt``
  (trainaug, 10 582) / ``val.txt`` (1 449) — also looked up in ``ImageSets/Segmentation/``.
- ``pcontext59``: the VOC2010 folder with 59-class context labels: ``JPEGImages/``,
  ``SegmentationClassContext/*.png`` (0 background, 1..59 in the catalog order) and
  ``ImageSets/SegmentationContext/{train,val}.txt``.
- ``ade20k``: ``ADEChallengeData2016/``: ``images/{training,validation}``, ``annotations/{training,validation}``.
- ``voc2012`` and ``cityscapes`` (the training-free family's VOC-21 and Cityscapes): see ``raw_extra``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

from .info import DatasetInfo
from .io import image_size, link_or_copy, read_label, write_label_png
from .layout import MAX_NAMED, list_samples, manifest_path, split_layout, verify_prepared
from .raw_pairs import RawPair, _find_list, _folder_pairs, _listed_pairs


def raw_pairs(raw_format: str, raw: Path, split: str) -> list[RawPair]:
    """The (image, label) files of one split of a raw download."""
    if raw_format == "coco_stuff":
        folder = {"train": "train2017", "val": "val2017"}[split]
        return _folder_pairs(raw / folder, raw / "stuffthingmaps" / folder)
    if raw_format == "voc_aug":
        names = {"train": ("train.txt", "ImageSets/Segmentation/trainaug.txt", "ImageSets/Segmentation/train_aug.txt"),
                 "val": ("val.txt", "ImageSets/Segmentation/val.txt")}[split]
        return _listed_pairs(raw, _find_list(raw, names, f"VOC {split}"), "JPEGImages", "SegmentationClassAug")
    if raw_format == "pcontext59":
        lst = _find_list(raw, (f"ImageSets/SegmentationContext/{split}.txt",), f"Pascal-Context {split}")
        return _listed_pairs(raw, lst, "JPEGImages", "SegmentationClassContext")
    if raw_format == "ade20k":
        folder = {"train": "training", "val": "validation"}[split]
        return _folder_pairs(raw / "images" / folder, raw / "annotations" / folder)
    from .raw_extra import EXTRA_RAW_READERS  # the training-free benchmarks' formats (VOC2012, Cityscapes)

    if raw_format in EXTRA_RAW_READERS:
        return EXTRA_RAW_READERS[raw_format](raw, split)
    raise DataError(f"unknown raw format {raw_format!r}.")


# -- lookup tables ------------------------------------------------------------------------------------------
def lookup_table(info: DatasetInfo, split: str) -> np.ndarray:
    """raw value -> train id of the split (ignore for everything else); 65536 entries cover 16-bit maps."""
    lut = np.full(65536, info.ignore_index, dtype=np.int32)
    seen_only = split == "train" and info.zero_shot
    kept = info.seen if seen_only else range(info.num_classes)
    for new_id, cls in enumerate(kept):
        lut[info.raw_ids[cls]] = new_id
    if info.background_raw_ids and not seen_only:
        lut[list(info.background_raw_ids)] = 0  # COCO-Object: every stuff value is background (class 0)
    return lut


# -- conversion ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    pair: RawPair
    image_out: Path
    label_out: Path


def _convert_one(job: _Job, lut: np.ndarray, ignore_index: int) -> tuple[str, str]:
    """Returns (status, detail): "written" / "exists" / "empty" / "error"."""
    if job.label_out.is_file() and job.image_out.is_file():
        return "exists", ""
    try:
        raw = read_label(job.pair.label)
        if raw.shape != image_size(job.pair.image):
            h, w = image_size(job.pair.image)
            return "error", f"{job.pair.label.name}: label {raw.shape[0]}x{raw.shape[1]} vs image {h}x{w}"
        converted = lut[raw]
    except DataError as exc:
        return "error", str(exc)
    if np.all(converted == ignore_index):
        return "empty", ""
    link_or_copy(job.pair.image, job.image_out)
    write_label_png(job.label_out, converted)
    return "written", ""


_WORKER_TABLE: tuple[np.ndarray, int] | None = None  # (lookup table, ignore) of a conversion process


def _init_worker(lut: np.ndarray, ignore: int) -> None:
    global _WORKER_TABLE
    _WORKER_TABLE = (lut, ignore)


def _convert_chunk(jobs: list[_Job]) -> list[tuple[str, str]]:
    assert _WORKER_TABLE is not None
    lut, ignore = _WORKER_TABLE
    return [_convert_one(j, lut, ignore) for j in jobs]


def convert_split(info: DatasetInfo, split: str, raw: Path, out: Path, workers: int = 1,
                  progress: bool | None = True) -> dict[str, int]:
    """Convert one split; returns counts of written / existing / empty (left out) maps."""
    from tqdm import tqdm

    layout = split_layout(info, split)
    pairs = raw_pairs(info.raw_format or "", raw, split)
    lut = lookup_table(info, split)
    jobs = [_Job(p, out / layout.image_dir / f"{p.stem}{layout.image_suffix}",
                 out / layout.label_dir / f"{p.stem}{layout.label_suffix}") for p in pairs]
    (out / layout.label_dir).mkdir(parents=True, exist_ok=True)
    (out / layout.image_dir).mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "exists": 0, "empty": 0, "error": 0}
    errors: list[str] = []
    bar = tqdm(total=len(jobs), desc=f"prepare {info.name}/{split}", unit="img", disable=None if progress is None else not progress)
    chunk = 64
    chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]

    def consume(results: list[tuple[str, str]]) -> None:
        for status, detail in results:
            counts[status] += 1
            if detail:
                errors.append(detail)
        bar.update(len(results))

    if workers > 1 and len(chunks) > 1:
        # the table goes to each process once, not with every chunk
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 initargs=(lut, info.ignore_index)) as pool:
            for results in pool.map(_convert_chunk, chunks):
                consume(results)
    else:
        _init_worker(lut, info.ignore_index)
        for c in chunks:
            consume(_convert_chunk(c))
    bar.close()
    if errors:
        raise DataError(
            f"prepare {info.name} ({split}): {len(errors)} raw files could not be converted: "
            + "; ".join(errors[:MAX_NAMED]) + (" ..." if len(errors) > MAX_NAMED else "")
            + ". Replace them from the original download and re-run (finished files are kept)."
        )
    return counts


def prepare_dataset(info: DatasetInfo, raw: str | Path, out: str | Path, workers: int = 1,
                    progress: bool | None = True, log: Callable[[str], None] = print) -> dict:
    """Convert every split of `info` from `raw` into the prepared layout under `out`, then verify it.

    Returns the manifest written (``<top>/<name>.harness_prepared.json``): per split the samples kept, the
    maps left out because no labelled pixel remained, and the raw pairs read.
    """
    if info.raw_format is None:
        raise DataError(
            f"dataset {info.name!r} has no converter in this harness: prepare it with the official script and "
            f"place it as {info.layout.val.image_dir} + {info.layout.val.label_dir} under the data root "
            f"({info.source})."
        )
    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise DataError(f"--raw {raw} is not a folder. Point it at the downloaded {info.raw_format} data.")
    splits = [s for s in ("train", "val") if info.layout.split(s) is not None]
    manifest: dict = {"dataset": info.name, "raw": str(raw.resolve()), "raw_format": info.raw_format,
                      "num_classes": info.num_classes, "splits": {}}
    for split in splits:
        counts = convert_split(info, split, raw, out, workers=workers, progress=progress)
        n = len(list_samples(info, split, out))
        manifest["splits"][split] = {
            "samples": n,
            "left_out_no_labelled_pixel": counts["empty"],
            "raw_pairs": sum(counts.values()),
            "classes": len(info.split_class_names(split)),
        }
        if info.official_count(split) is not None:
            manifest["splits"][split]["official_samples"] = info.official_count(split)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = manifest_path(info, out)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    verify_prepared(info, out, deep=True, progress=progress)
    for split, c in manifest["splits"].items():
        log(f"{info.name} {split}: {c['samples']} samples, {c['classes']} classes "
            f"(labels 0..{c['classes'] - 1}, ignore {info.ignore_index}); "
            f"{c['left_out_no_labelled_pixel']} of {c['raw_pairs']} raw maps left out (no labelled pixel)")
        if c.get("official_samples", c["samples"]) != c["samples"]:
            log(f"WARNING: {info.name} {split} has {c['samples']} samples, the official split has "
                f"{c['official_samples']}: the raw download at {raw} is incomplete or is another split.")
    log(f"verified: label values in range, label sizes equal image sizes. Manifest: {path}")
    return manifest
