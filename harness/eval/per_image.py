"""Per-image evidence: for every evaluated image and every class in its ground truth or its prediction, the three
pixel counts every metric needs (intersection, predicted area, ground-truth area; over labelled pixels only, as
the confusion matrix). Summed over images they are the confusion matrix's diagonal, column sums and row sums, so
they reproduce the record's metrics exactly (`harness.eval.metrics.metrics_from_counts`); resampled over images
they give bootstrap intervals and paired claims (`harness.eval.bootstrap`).

Stored sparsely beside the record as ``<stem>.evidence.npz`` (compressed; no pickle): ``image``, ``cls`` (int32
per entry), ``inter``, ``pred``, ``gt`` (int32 counts, int64 beyond 2**31 pixels), ``names`` (the images' file
names, in evaluation order: what pairs two records image by image), ``seen``, ``unseen`` (class ids of the record's
seen / unseen subsets) and ``num_classes``. The record names the file (``evidence_file``) and its size
(``evidence_bytes``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import CONVENTIONS, DEFAULT_CONVENTION, metrics_from_counts

HEADLINE = ("miou", "miou_seen", "miou_unseen", "hiou", "pacc")  # the metrics evidence is verified and resampled on
FIELDS = ("image", "cls", "inter", "pred", "gt")


@dataclass(frozen=True)
class Evidence:
    """The per-image counts of one record (one row per image and class that occurs in it)."""

    names: np.ndarray  # (n_images,) str
    image: np.ndarray  # (E,) index into names
    cls: np.ndarray  # (E,)
    inter: np.ndarray
    pred: np.ndarray
    gt: np.ndarray
    num_classes: int
    seen: tuple[int, ...] = ()
    unseen: tuple[int, ...] = ()

    @property
    def n_images(self) -> int:
        return len(self.names)

    def totals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tp, pos_gt, pos_pred) per class over all images, int64: the confusion matrix's three vectors."""
        tp, pos_gt, pos_pred = (_sum_by_class(self.cls, v, self.num_classes) for v in (self.inter, self.gt, self.pred))
        return tp, pos_gt, pos_pred

    def matrices(self):
        """(tp, pos_gt, pos_pred) as sparse images x classes matrices (scipy CSR, int64)."""
        from scipy import sparse

        shape = (self.n_images, self.num_classes)
        return tuple(sparse.csr_matrix((v.astype(np.int64), (self.image, self.cls)), shape=shape)
                     for v in (self.inter, self.gt, self.pred))

    def metrics(self, convention: str = DEFAULT_CONVENTION, class_names=None) -> dict:
        """The record's metrics recomputed from the summed counts (bit-identical to the confusion matrix's)."""
        return metrics_from_counts(*self.totals(), seen=self.seen if self.unseen else None, unseen=self.unseen,
                                   convention=convention, class_names=class_names)


def _sum_by_class(cls: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(k, dtype=np.int64)
    np.add.at(out, cls, values.astype(np.int64))  # exact integer sums (bincount would go through float64)
    return out


class PerImageCounter:
    """Collects the evidence image by image during evaluation (on the device; one small transfer per image)."""

    def __init__(self, num_classes: int, ignore_index: int = 255, seen=(), unseen=()) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.seen, self.unseen = tuple(int(i) for i in seen), tuple(int(i) for i in unseen)
        self.names: list[str] = []
        self.rows: list[np.ndarray] = []  # per image: (classes, 4) [cls, inter, pred, gt]

    def add(self, name: str, prediction, label) -> None:
        import torch

        k = self.num_classes
        gt = label.to(prediction.device, torch.int64).reshape(-1)
        pred = prediction.to(torch.int64).reshape(-1)
        valid = gt != self.ignore_index
        gt, pred = gt[valid], pred[valid]
        counts = torch.stack([torch.bincount(gt[gt == pred], minlength=k), torch.bincount(pred, minlength=k),
                              torch.bincount(gt, minlength=k)])[:, :k].cpu().numpy()
        present = np.flatnonzero(counts[1] + counts[2])
        self.rows.append(np.column_stack([present, counts[:, present].T]))
        self.names.append(str(name))

    def gather(self) -> PerImageCounter:
        """Under torchrun: every rank's images, in rank order (a no-op in one process)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(parts, (self.names, self.rows))
            self.names = [n for names, _ in parts for n in names]
            self.rows = [r for _, rows in parts for r in rows]
        return self

    def evidence(self) -> Evidence:
        lengths = [len(r) for r in self.rows]
        table = np.concatenate(self.rows) if self.rows else np.zeros((0, 4), dtype=np.int64)
        big = table.size and table[:, 1:].max() >= 2**31
        counts = table[:, 1:].astype(np.int64 if big else np.int32)
        return Evidence(names=np.array(self.names, dtype=str), image=np.repeat(np.arange(len(lengths)), lengths)
                        .astype(np.int32), cls=table[:, 0].astype(np.int32), inter=counts[:, 0], pred=counts[:, 1],
                        gt=counts[:, 2], num_classes=self.num_classes, seen=self.seen, unseen=self.unseen)


def evidence_path(record_path: Path | str) -> Path:
    path = Path(record_path)
    return path.with_name(path.stem + ".evidence.npz")


def evidence_bytes(evidence: Evidence) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f: getattr(evidence, f) for f in FIELDS}, names=evidence.names,
                        num_classes=np.int64(evidence.num_classes), seen=np.array(evidence.seen, dtype=np.int32),
                        unseen=np.array(evidence.unseen, dtype=np.int32))
    return buf.getvalue()


def read_evidence(path: Path | str) -> Evidence:
    with np.load(path, allow_pickle=False) as data:
        return Evidence(names=data["names"], **{f: data[f] for f in FIELDS}, num_classes=int(data["num_classes"]),
                        seen=tuple(int(i) for i in data["seen"]), unseen=tuple(int(i) for i in data["unseen"]))


def load_evidence(record: dict[str, Any]) -> Evidence | None:
    """The evidence beside a loaded record, or None for records without it (earlier runs, speed records)."""
    name = record.get("evidence_file")
    if not name or "_path" not in record:
        return None
    return read_evidence(Path(record["_path"]).with_name(name))


def evidence_problem(record: dict[str, Any]) -> str | None:
    """Why the record's per-image evidence does not reproduce its metrics exactly, or None when it does (or when
    the record has none)."""
    name = record.get("evidence_file")
    if not name or "_path" not in record:
        return None
    path = Path(record["_path"]).with_name(name)
    try:
        evidence = read_evidence(path)
    except FileNotFoundError:
        return f"its per-image evidence {path} is missing"
    except (OSError, ValueError, KeyError, EOFError) as exc:
        return f"its per-image evidence {path} cannot be read ({exc})"
    metrics = record.get("metrics") or {}
    names = list(metrics.get("per_class_iou") or {})
    if evidence.num_classes != len(names) or (evidence.cls.size and evidence.cls.max() >= len(names)):
        return f"its per-image evidence {path} has {evidence.num_classes} classes, the record {len(names)}"
    expected = record.get("evidence_images", record.get("eval_images"))
    if expected is not None and evidence.n_images != expected:
        return f"its per-image evidence {path} covers {evidence.n_images} images, the record {expected}"
    convention = record.get("miou_convention") or DEFAULT_CONVENTION
    if convention not in CONVENTIONS:
        return f"it names an unknown mIoU convention {convention!r}"
    again = evidence.metrics(convention, names)
    for key in (*HEADLINE, "per_class_iou"):
        if key in metrics and metrics[key] != again.get(key):
            return (f"its per-image evidence {path} gives {key} {again.get(key)!r:.80}, the record "
                    f"{metrics[key]!r:.80}")
    return None
