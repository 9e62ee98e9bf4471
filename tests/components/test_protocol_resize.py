"""The two resizings of the training-free family (methods/components/protocol_resize.py).

Positional grid: against bicubic convolution written out here (Keys' kernel, A = -0.75 as torch and the repos'
`F.interpolate(mode="bicubic")`, border indices clamped), sampling source position (i + 0.5) * n0 / (g + 0.1) - 0.5
(SCLIP clip/model.py L273-276: scale_factor = (g + 0.1) / n0, align_corners False). Image: the cv2 path equals
`cv2.resize(..., INTER_LINEAR)` itself on uint8, as mmseg's Resize calls it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from methods.components.last_block import TrainingFreeCLIP, make_rule
from methods.components.protocol_resize import resample_positions, resize_image
from methods.components.weights import build_clip
from methods.training_free import TrainingFreePlugin


def keys_cubic(t: float, a: float = -0.75) -> float:
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    if t < 2:
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return 0.0


def bicubic_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """(n_out, n_in): row i samples source position (i + 0.5) / scale - 0.5 with clamped borders."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = (i + 0.5) / scale - 0.5
        x0 = math.floor(x)
        for k in range(-1, 3):
            m[i, min(max(x0 + k, 0), n_in - 1)] += keys_cubic(x - (x0 + k))
    return m


def table(n0: int, width: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(1 + n0 * n0, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("grid", [(21, 28), (5, 9), (28, 28)])
def test_scale_factor_positions_follow_the_repositories_formula(grid):
    n0 = 14
    t = table(n0)
    out = resample_positions(t, (n0, n0), grid, "scale-factor")
    mh = bicubic_matrix(n0, grid[0], (grid[0] + 0.1) / n0)
    mw = bicubic_matrix(n0, grid[1], (grid[1] + 0.1) / n0)
    patches = t[1:].numpy().reshape(n0, n0, -1)
    expected = np.einsum("ia,jb,abc->ijc", mh, mw, patches).reshape(-1, t.shape[1])
    assert out.shape == (1 + grid[0] * grid[1], t.shape[1])
    np.testing.assert_allclose(out[0].numpy(), t[0].numpy())  # CLS row kept
    np.testing.assert_allclose(out[1:].numpy(), expected, rtol=0, atol=1e-10)
    # "size" samples (i + 0.5) * n0 / g - 0.5: a different table off the native grid
    sized = resample_positions(t, (n0, n0), grid, "size")
    expected_size = np.einsum("ia,jb,abc->ijc", bicubic_matrix(n0, grid[0], grid[0] / n0),
                              bicubic_matrix(n0, grid[1], grid[1] / n0), patches).reshape(-1, t.shape[1])
    np.testing.assert_allclose(sized[1:].numpy(), expected_size, rtol=0, atol=1e-10)
    assert (out[1:] - sized[1:]).abs().max() > 1e-3


def test_scale_factor_keeps_the_table_when_the_token_count_matches():
    """The repos interpolate only when the token count differs: the native grid, and a 7x28 window on a 14x14
    table (196 tokens), keep the table row for row."""
    t = table(14)
    assert torch.equal(resample_positions(t, (14, 14), (14, 14), "scale-factor"), t)
    assert torch.equal(resample_positions(t, (14, 14), (7, 28), "scale-factor"), t)
    with pytest.raises(ConfigError, match="pos_interp"):
        resample_positions(t, (14, 14), (7, 9), "nearest")


def test_training_free_clip_adds_the_chosen_positions():
    clip = build_clip("tiny-vit-p16", "random", seed=3)[0]
    visual = clip.visual
    for mode in ("scale-factor", "size"):
        model = TrainingFreeCLIP(clip, make_rule("identity"), pos_interp=mode)
        expected = resample_positions(visual.positional_embedding, tuple(visual.grid_size), (3, 5), mode)
        assert torch.equal(model.positions((3, 5)), expected)
    with pytest.raises(ConfigError, match="pos_interp"):
        TrainingFreeCLIP(clip, make_rule("identity"), pos_interp="area")


@pytest.mark.parametrize("size", [(37, 61), (120, 90)])
def test_cv2_resize_is_cv2s_own_output(size):
    image = torch.randint(0, 256, (3, 53, 71), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    out = resize_image(image, size, "cv2")
    hwc = image.permute(1, 2, 0).numpy().copy()
    expected = cv2.resize(hwc, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    assert out.shape == (1, 3, *size) and out.dtype == torch.float32
    np.testing.assert_array_equal(out[0].permute(1, 2, 0).numpy(), expected.astype(np.float32))
    torched = resize_image(image, size, "torch")
    expected_torch = torch.nn.functional.interpolate(image.float()[None], size=size, mode="bilinear",
                                                     align_corners=False)
    assert torch.equal(torched, expected_torch)
    assert not torch.equal(out, torched)  # uint8 rounding (and cv2's fixed point) differ from float bilinear
    with pytest.raises(ConfigError, match="resize"):
        resize_image(image, size, "pil")


def test_options_are_recorded_with_the_repositories_defaults_and_checked():
    plugin = TrainingFreePlugin("t", "t")
    spec = plugin.resolve({})
    assert (spec["pos_interp"], spec["resize"]) == ("scale-factor", "cv2")
    assert plugin.resolve({"pos_interp": "size", "resize": "torch"})["resize"] == "torch"
    for key, bad in (("pos_interp", "bilinear"), ("resize", "pil"), ("resize", 3)):
        with pytest.raises(ConfigError, match=key):
            plugin.resolve({key: bad})
