"""Datasets: the catalog (class names, zero-shot splits, layouts, settings), `prepare` converters from the
official downloads, loading with the official transforms, and synthetic data in the real raw formats.

Importing this package stays light (no torch); `open_dataset` imports the loader on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .info import DatasetInfo, Layout, SplitLayout, TrainSettings
from .layout import data_root, list_samples, verify_prepared

if TYPE_CHECKING:
    from pathlib import Path

    from .dataset import SegmentationDataset
    from .transforms import PairTransform

__all__ = [
    "DatasetInfo", "Layout", "SplitLayout", "TrainSettings", "data_root", "get_info", "list_samples",
    "open_dataset", "verify_prepared",
]


def get_info(name: str) -> DatasetInfo:
    """The catalog entry of `name` (unknown names get "did you mean")."""
    from harness.registries import DATASETS

    return DATASETS.get(name)


def open_dataset(name: str, split: str, root: str | Path | None = None, *,
                 transform: PairTransform | None = None, seed: int = 0) -> SegmentationDataset:
    """A prepared split as a torch Dataset; see `harness.data.dataset`."""
    from .dataset import open_dataset as _open

    return _open(name, split, root, transform=transform, seed=seed)
