"""What every stage shares: schedules from the suite over the official recipe, deterministic batches, devices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

import numpy as np
import torch

from harness.data import open_dataset
from harness.data.info import TrainSettings
from harness.data.transforms import train_transform
from harness.errors import ConfigError
from harness.train.loop import TrainConfig
from harness.train.settings import check_stage_settings

# Schedule keys a suite may override per stage (beyond TrainConfig's own fields).
STAGE_EXTRA_KEYS = {"crop", "min_sizes", "max_size", "max_images"}


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available here; use --device cpu.")
    return torch.device(device)


def stage_schedule(official: TrainConfig, overrides: Mapping[str, Any] | None, stage: str,
                   seed: int) -> tuple[TrainConfig, dict[str, Any]]:
    """The official recipe of ``stage`` with the suite's overrides: (TrainConfig, extra settings)."""
    overrides = dict(overrides or {})
    check_stage_settings(stage, overrides)  # types and ranges (also checked when the suite is validated)
    names = {f.name for f in fields(TrainConfig)}
    cfg_values = {k: v for k, v in overrides.items() if k in names}
    if "lr_multipliers" in cfg_values:
        cfg_values["lr_multipliers"] = tuple(tuple(x) for x in dict(cfg_values["lr_multipliers"]).items())
    cfg = replace(official, seed=seed, **cfg_values)
    return cfg, {k: v for k, v in overrides.items() if k in STAGE_EXTRA_KEYS}


def rank_share(batch_size: int, rank: int, world: int) -> range:
    """The positions of the global batch this rank computes (equal shares, so averaged gradients are exact)."""
    if batch_size % world:
        raise ConfigError(f"batch size {batch_size} is not divisible by the {world} processes.")
    return range(rank, batch_size, world)


def step_indices(step: int, n_items: int, batch_size: int, seed: int, rank: int, world: int) -> list[int]:
    """The dataset indices of one step's global batch, this rank's share: a pure function of the step,
    so resume and DDP see the same data as an uninterrupted single-process run."""
    rng = np.random.default_rng([seed, step])
    chosen = rng.integers(0, n_items, size=batch_size)
    return [int(chosen[j]) for j in rank_share(batch_size, rank, world)]


def stack_batch(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B,3,H,W) uint8 and labels (B,H,W) of equally sized (padded) training samples."""
    return torch.stack([it["image"] for it in items]), torch.stack([it["label"] for it in items])


def train_settings(info, extra: dict) -> TrainSettings:
    """The dataset's official augmentation, with the suite's size overrides (smoke profiles use small crops)."""
    base = info.train
    if base is None:
        raise ValueError(f"dataset {info.name!r} has no training settings; it is a test-only set.")
    crop = int(extra.get("crop", base.crop_size))
    return TrainSettings(
        min_size_choices=tuple(extra.get("min_sizes", base.min_size_choices)),
        max_size=int(extra.get("max_size", base.max_size)),
        crop_size=crop,
        size_divisibility=int(extra.get("crop", base.size_divisibility)),
        color_aug_ssd=base.color_aug_ssd,
        flip_prob=base.flip_prob,
    )


def augmented_training_set(env, info, extra: dict):
    """The training split of ``env.train_dataset`` with the dataset's official augmentation and the suite's size
    overrides (what stages 2 and 3 train on)."""
    return open_dataset(env.train_dataset, "train", env.data_root,
                        transform=train_transform(train_settings(info, extra), info.ignore_index), seed=env.seed)


def segmentation_batches(dataset, cfg: TrainConfig, device: torch.device):
    """The batch function of a training stage over a segmentation set: step -> this rank's share of the step's
    images and labels, stacked and on ``device`` (the same images for every stage under one seed)."""

    def batch_fn(step: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
        dataset.set_epoch(step)
        items = [dataset[i] for i in step_indices(step, len(dataset), cfg.batch_size, cfg.seed, rank, world)]
        images, labels = stack_batch(items)
        return images.to(device), labels.to(device)

    return batch_fn
