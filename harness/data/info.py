"""What the harness knows about one dataset: classes, zero-shot split, prepared layout and settings.

A `DatasetInfo` is plain data (the catalog in `harness.data.catalog` holds one per dataset). Train ids are
the contiguous indices into `class_names`; the *prepared* training split of a zero-shot dataset is labelled
in the seen-class index space (0..len(seen)-1), exactly as the official ``*_base`` label maps
(METHOD_SPEC §10.1-10.2), so `split_class_names("train")` returns the seen names there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val")


@dataclass(frozen=True)
class SplitLayout:
    """Where one prepared split lives, relative to the data root. Images and labels pair by file stem."""

    image_dir: str
    label_dir: str
    image_suffix: str = ".jpg"
    label_suffix: str = ".png"


@dataclass(frozen=True)
class Layout:
    """The prepared splits: `train` (seen-only labels for zero-shot sets) and `val` (all classes)."""

    val: SplitLayout
    train: SplitLayout | None = None

    def split(self, name: str) -> SplitLayout | None:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; the prepared splits are {', '.join(SPLITS)}.")
        return self.train if name == "train" else self.val


@dataclass(frozen=True)
class TrainSettings:
    """The official training-time augmentation (detectron2 ``mask_former_semantic`` mapper).

    `size_divisibility` is used by that mapper as a *fixed* output size: every crop is padded (image 128,
    label ignore) or, when larger, trimmed from the bottom/right to exactly this square (METHOD_SPEC §8:
    a 640 crop with SIZE_DIVISIBILITY 512 yields 512x512 inputs).
    """

    min_size_choices: tuple[int, ...]
    max_size: int
    crop_size: int
    size_divisibility: int
    color_aug_ssd: bool = True
    flip_prob: float = 0.5


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of the catalog. Construction rejects duplicate class names and bad unseen ids."""

    name: str
    title: str
    class_names: tuple[str, ...]
    layout: Layout
    raw_format: str | None  # which `harness.data.prepare` converter; None: no converter (layout only)
    raw_ids: tuple[int, ...] = ()  # value of each class (train-id order) in the raw label maps
    unseen: tuple[int, ...] = ()  # train ids of unseen classes; empty for cross-dataset sets
    ignore_index: int = 255  # label value for "no class" (65535 for the 16-bit TIFF sets)
    test_short_side: int = 512
    test_max_size: int = 2048
    train: TrainSettings | None = None
    synthetic: bool = False
    # A synthetic set drawn with looks of its own: "module:attribute" of a `harness.data.synthetic.Appearances`
    # (None: the generator's shared tables).
    appearances: str | None = None
    source: str = ""  # where the facts come from (METHOD_SPEC section / official file)
    notes: tuple[str, ...] = field(default=())
    # class 0 is a "background" class that is predicted and scored (VOC-21, PC-60, COCO-Object); the
    # training-free methods answer it with a background query and a probability threshold (TRAINING_FREE_SPEC §2)
    has_background: bool = False
    background_raw_ids: tuple[int, ...] = ()  # further raw values that become class 0 (COCO-Object's stuff)
    official_samples: tuple[tuple[str, int], ...] = ()  # (split, images) of the official split, checked by prepare

    def __post_init__(self) -> None:
        _reject_duplicates(self.name, self.class_names)
        k = len(self.class_names)
        bad = [u for u in self.unseen if not 0 <= u < k]
        if bad or len(set(self.unseen)) != len(self.unseen):
            raise DataError(
                f"dataset {self.name!r}: unseen class ids {list(self.unseen)} must be distinct train ids in "
                f"[0, {k}); out of range: {bad}. Fix the catalog entry."
            )
        if self.raw_ids and (len(self.raw_ids) != k or len(set(self.raw_ids)) != k):
            raise DataError(
                f"dataset {self.name!r}: raw_ids must give one distinct raw label value per class "
                f"({k} classes, got {len(self.raw_ids)} values, {len(set(self.raw_ids))} distinct)."
            )
        if self.raw_format is not None and not self.raw_ids:
            raise DataError(f"dataset {self.name!r}: a raw_format needs raw_ids to map raw labels to train ids.")
        _check_background(self)
        if k > self.ignore_index:
            raise DataError(
                f"dataset {self.name!r}: {k} classes do not fit below ignore_index {self.ignore_index}; "
                f"use a 16-bit ignore value (65535)."
            )

    # -- classes ------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def seen(self) -> tuple[int, ...]:
        """Train ids of the seen classes (all classes for a cross-dataset set)."""
        unseen = set(self.unseen)
        return tuple(i for i in range(self.num_classes) if i not in unseen)

    @property
    def zero_shot(self) -> bool:
        return bool(self.unseen)

    @property
    def seen_names(self) -> tuple[str, ...]:
        return tuple(self.class_names[i] for i in self.seen)

    @property
    def unseen_names(self) -> tuple[str, ...]:
        return tuple(self.class_names[i] for i in self.unseen)

    def split_class_names(self, split: str) -> tuple[str, ...]:
        """The classes the labels of a prepared split index into (seen only for a zero-shot train split)."""
        self.layout.split(split)
        return self.seen_names if (split == "train" and self.zero_shot) else self.class_names

    def official_count(self, split: str) -> int | None:
        """The number of images of the official `split` (None where the catalog does not pin it)."""
        return dict(self.official_samples).get(split)

    # -- user-facing help ---------------------------------------------------------------------------
    def prepare_command(self, raw: str = "PATH") -> str:
        return f"python -m harness prepare {self.name} --raw {raw}"


def _reject_duplicates(dataset: str, names: tuple[str, ...]) -> None:
    if not names:
        raise DataError(f"dataset {dataset!r} has an empty class list.")
    exact = sorted(n for n, c in Counter(names).items() if c > 1)
    # prompts use name.strip(), so "window" and "window " would collide as text classes
    stripped = sorted(n for n, c in Counter(n.strip() for n in names).items() if c > 1)
    # the tokenizer lowercases, so "Car" and "car" would also be one text class
    folded = sorted(n for n, c in Counter(n.strip().casefold() for n in names).items() if c > 1)
    if exact or stripped or folded:
        dup = exact or stripped or [n for n in names if n.strip().casefold() in folded]
        raise DataError(
            f"dataset {dataset!r}: duplicate class names {dup} (compared without edge spaces and case: the "
            f"tokenizer lowercases); "
            f"every class needs a distinct name, or two classes would share one text embedding. "
            f"Rename or remove the duplicates."
        )


def _check_background(info: DatasetInfo) -> None:
    if info.has_background and info.class_names[0] != "background":
        raise DataError(f"dataset {info.name!r}: has_background needs class 0 named 'background', not "
                        f"{info.class_names[0]!r}.")
    if info.background_raw_ids and not info.has_background:
        raise DataError(f"dataset {info.name!r}: background_raw_ids need has_background (class 0).")
    both = sorted(set(info.background_raw_ids) & set(info.raw_ids))
    if both:
        raise DataError(f"dataset {info.name!r}: raw values {both} are both a class's raw id and a background "
                        f"raw id; each raw value maps to one class.")
    unknown = [s for s, _ in info.official_samples if s not in SPLITS]
    if unknown:
        raise DataError(f"dataset {info.name!r}: official_samples names unknown splits {unknown}.")
