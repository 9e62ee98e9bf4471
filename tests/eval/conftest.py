"""A prepared synthetic COCO-format dataset (real prepare code), shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import get_info
from harness.data.prepare import prepare_dataset
from harness.data.synthetic import write_synthetic_raw


@pytest.fixture(scope="session")
def coco_root(tmp_path_factory) -> Path:
    raw = write_synthetic_raw("coco_stuff", tmp_path_factory.mktemp("raw") / "coco", n_train=4, n_val=8, size=48,
                              seed=5)
    root = tmp_path_factory.mktemp("prepared")
    prepare_dataset(get_info("synthetic_coco"), raw, root, workers=1, progress=False, log=lambda _: None)
    return root
