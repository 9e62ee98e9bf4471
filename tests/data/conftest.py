"""Synthetic raw downloads in every official format, prepared once per session by the real converter."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import get_info
from harness.data.prepare import prepare_dataset
from harness.data.synthetic import write_synthetic_raw

SYNTHETIC = {"synthetic_coco": "coco_stuff", "synthetic_voc": "voc_aug", "synthetic_pc": "pcontext59",
             "synthetic_ade": "ade20k"}


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("raw")
    return {name: write_synthetic_raw(fmt, base / name, n_train=12, n_val=6, size=48, seed=3)
            for name, fmt in SYNTHETIC.items()}


@pytest.fixture(scope="session")
def prepared_root(tmp_path_factory, synthetic_raw) -> Path:
    root = tmp_path_factory.mktemp("prepared")
    for name, raw in synthetic_raw.items():
        prepare_dataset(get_info(name), raw, root, workers=1, progress=False, log=lambda _: None)
    return root
