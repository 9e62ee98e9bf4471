"""Predictions as files other tools read: detectron2's ``sem_seg_predictions.json`` (COCO RLE) or label PNGs.

detectron2's ``SemSegEvaluator`` (``detectron2/evaluation/sem_seg_evaluation.py``, ``encode_json_sem_seg``)
writes, when it has an ``output_dir``, one JSON list with an entry per predicted class per image::

    {"file_name": <the image's path>, "category_id": <the dataset's id of the class>,
     "segmentation": {"size": [H, W], "counts": <pycocotools RLE of the class's mask, as text>}}

where the mask is ``mask_util.encode(np.array(mask[:, :, None], order="F"))[0]`` of the argmax label map and
``category_id`` maps the contiguous train id back through the dataset's ``stuff_dataset_id_to_contiguous_id``
(the train id itself when the dataset registers no such mapping). `PredictionWriter` writes our predictions
the same way (or as label PNGs named ``<image stem>.png``), so detectron2-based tools and ``harness evaluate``
read them; `harness.eval.sem_seg_json` reads such files back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.info import DatasetInfo
from harness.errors import ConfigError
from harness.results import file_sha256

PREDICTION_FORMATS: tuple[str, ...] = ("json", "png")
JSON_NAME = "sem_seg_predictions.json"  # detectron2's file name


def detectron2_category_ids(info: DatasetInfo) -> tuple[int, ...]:
    """The ``category_id`` detectron2 writes for each train id of `info` (index = train id).

    COCO-Stuff's raw format stores COCO id - 1 in its label maps (our ``raw_ids``), and the official
    registrations (DeOP / zsseg ``register_coco_stuff.py``: ``stuff_dataset_id_to_contiguous_id = {COCO id: i}``)
    map back to the COCO ids: 1-91 things, 92-182 stuff, with gaps. Every other dataset of the catalog is
    registered with the train id as its id: VOC (zsseg ``register_voc_seg.py``: ``{i: i}``), ADE-150
    (detectron2's builtin ``ade20k_sem_seg_val`` has no mapping), Pascal-Context-59 and -459 (DeOP
    ``register_pcontext.py``: no mapping) and ADE-847 (``register_ade20k_full.py`` sets only ``stuff_classes``).
    """
    if info.raw_format == "coco_stuff":
        return tuple(int(r) + 1 for r in info.raw_ids)
    return tuple(range(info.num_classes))


def encode_label_map(label: np.ndarray, file_name: str, category_ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """detectron2's entries for one label map of train ids (``encode_json_sem_seg``): one per class present."""
    from pycocotools import mask as mask_util

    if label.ndim != 2:
        raise ValueError(f"a label map must be 2-D, got shape {label.shape}")
    entries = []
    for train_id in np.unique(label):
        if not 0 <= int(train_id) < len(category_ids):
            raise ValueError(f"{file_name}: label value {int(train_id)} is not a train id of "
                             f"{len(category_ids)} classes")
        mask = np.asfortranarray((label == train_id)[:, :, None].astype(np.uint8))
        rle = mask_util.encode(mask)[0]
        entries.append({"file_name": file_name, "category_id": int(category_ids[int(train_id)]),
                        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}})
    return entries




def check_prediction_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in PREDICTION_FORMATS:
        raise ConfigError(f"--save-predictions {fmt!r}: choose one of {', '.join(PREDICTION_FORMATS)}.")


class PredictionWriter:
    """Collects one evaluation's label maps and writes them into `folder` (created on first use).

    ``json``: ``folder/sem_seg_predictions.json`` as detectron2 writes it (written once, by `close`; under
    torchrun every rank's entries are gathered to rank 0). ``png``: ``folder/<image stem>.png`` holding train
    ids (16-bit above 255 classes), the layout ``harness evaluate --pred DIR`` reads, written as they come.
    """

    def __init__(self, fmt: str, folder: Path, info: DatasetInfo) -> None:
        check_prediction_format(fmt)
        self.format = fmt
        self.folder = Path(folder)
        self.category_ids = detectron2_category_ids(info)
        self.entries: list[dict[str, Any]] = []
        self.images = 0

    def add(self, file_name: str, label) -> None:
        """One image's prediction: `file_name` its image path, `label` an HxW map of train ids (array or tensor)."""
        if hasattr(label, "detach"):
            label = label.detach().cpu().numpy()
        label = np.asarray(label).astype(np.int64)
        self.images += 1
        if self.format == "json":
            self.entries += encode_label_map(label, file_name, self.category_ids)
        else:
            from harness.data.io import write_label_png

            write_label_png(self.folder / f"{Path(file_name).stem}.png", label)

    def close(self) -> dict[str, Any]:
        """Write what remains; returns what the record says about the files (format, path, images, sha256)."""
        from harness.train import distributed as dist_utils

        images = self.images
        if dist_utils.world_size() > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * dist_utils.world_size()
            dist.all_gather_object(gathered, (self.entries if self.format == "json" else [], self.images))
            self.entries = [e for part, _ in gathered for e in part]
            images = sum(n for _, n in gathered)
        summary: dict[str, Any] = {"format": self.format, "images": images}
        if self.format == "json":
            path = self.folder / JSON_NAME
            if dist_utils.is_main():
                from harness.results import atomic_write_text

                self.folder.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(self.entries))
                summary["sha256"] = file_sha256(path)
            summary["path"] = str(path)
        else:
            summary["path"] = str(self.folder)
        return summary
