"""Loading a prepared split as a torch Dataset.

Each item is a dict: ``image`` (uint8 CHW RGB tensor, 0-255, not normalised: each method normalises as its
official code does), ``label`` (int64 HxW, the dataset's ``ignore_index`` for no class), ``file_name``
(image path), ``height`` / ``width`` (the original image size, before any transform).
With a random transform, item i of epoch e is drawn from a generator seeded by (seed, e, i), so the data a
run sees does not depend on worker processes or iteration order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.errors import DataError

from .info import DatasetInfo
from .io import read_image, read_label
from .layout import Sample, data_root, list_samples, verify_prepared
from .transforms import PairTransform


class SegmentationDataset(Dataset):
    """The samples of one prepared split, optionally transformed."""

    def __init__(self, info: DatasetInfo, split: str, samples: list[Sample],
                 transform: PairTransform | None = None, seed: int = 0) -> None:
        self.info = info
        self.split = split
        self.samples = samples
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.class_names: tuple[str, ...] = info.split_class_names(split)
        self.ignore_index = info.ignore_index

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Draw different (but reproducible) augmentations each epoch."""
        self.epoch = epoch

    def generator(self, index: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The untransformed (image, label) of one sample; sizes must agree."""
        s = self.samples[index]
        image = read_image(s.image)
        label = read_label(s.label)
        if label.shape != image.shape[:2]:
            raise DataError(
                f"dataset {self.info.name!r}: label {s.label} is {label.shape[0]}x{label.shape[1]} but its image "
                f"{s.image} is {image.shape[0]}x{image.shape[1]}. Re-run `{self.info.prepare_command()}`."
            )
        k = len(self.class_names)
        if label.size and label.max() >= k:
            bad = np.unique(label[(label >= k) & (label != self.ignore_index)])
            if bad.size:
                raise DataError(
                    f"dataset {self.info.name!r}: label {s.label} holds values {bad[:10].tolist()} outside "
                    f"0..{k - 1} and the ignore value {self.ignore_index}. Re-run `{self.info.prepare_command()}`."
                )
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label.astype(np.int64))

    def __getitem__(self, index: int) -> dict:
        image, label = self.load(index)
        height, width = image.shape[-2:]
        if self.transform is not None:
            image, label = self.transform(image, label, self.generator(index))
        return {
            "image": image,
            "label": label,
            "file_name": str(self.samples[index].image),
            "height": int(height),
            "width": int(width),
        }


def get_info(name: str) -> DatasetInfo:
    from harness.registries import DATASETS

    return DATASETS.get(name)


def open_dataset(name: str, split: str, root: str | Path | None = None, *,
                 transform: PairTransform | None = None, seed: int = 0) -> SegmentationDataset:
    """A prepared split of a catalog dataset. Missing or inconsistent data raises DataError saying what to run."""
    info = get_info(name)
    root = data_root(root)
    verify_prepared(info, root, splits=(split,))
    return SegmentationDataset(info, split, list_samples(info, split, root), transform=transform, seed=seed)
