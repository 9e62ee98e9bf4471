"""Tiny methods shared by the viz tests (built once per module: building CLIP costs about a second)."""

from pathlib import Path

import numpy as np
import pytest

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "proposals": {"preset": "smoke"},
        "prompt_layers": [1, 2], "test_short_side": 64}


def build(method: str, options: dict, cache_dir: Path):
    from harness.api import MethodEnv
    from harness.registries import METHODS

    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=cache_dir, device="cpu",
                    progress=False, log=lambda *a: None)
    return METHODS.get(method).build_untrained(options, env)


def scene(height: int = 64, width: int = 96) -> np.ndarray:
    """Sky above grass with a red disc: three regions a human would name."""
    yy, xx = np.mgrid[:height, :width]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (90, 160, 220)
    image[yy > 0.66 * height] = (40, 150, 40)
    image[(yy - 0.4 * height) ** 2 + (xx - 0.4 * width) ** 2 < (0.2 * height) ** 2] = (200, 30, 30)
    return image


@pytest.fixture(scope="module")
def deop_tiny(tmp_path_factory):
    return build("deop", TINY, tmp_path_factory.mktemp("cache"))
