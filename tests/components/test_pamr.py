"""PAMR pinned against an independent per-pixel loop and a case computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import ConfigError
from methods.components.pamr import pamr


def loop_pamr(image, mask, steps, dilations):
    """The PAMR equations pixel by pixel in plain Python (clamped coordinates = replicate padding)."""
    _, k_ch, h, w = image.shape
    c_ch = mask.shape[1]
    img = image[0].tolist()

    def at(t, ch, y, x):
        return t[ch][min(max(y, 0), h - 1)][min(max(x, 0), w - 1)]

    offsets = [(dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    neighbours = [o for o in offsets if o != (0, 0)]
    aff = [[None] * w for _ in range(h)]
    for y in range(h):
        for x in range(w):
            logits = [0.0] * len(neighbours)
            for k in range(k_ch):
                values = [at(img, k, y + oy, x + ox) for oy, ox in offsets]
                mean = sum(values) / len(values)
                sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                for p, (oy, ox) in enumerate(neighbours):
                    diff = abs(img[k][y][x] - at(img, k, y + oy, x + ox))
                    logits[p] += -diff / (1e-8 + 0.1 * sigma) / k_ch
            top = max(logits)
            exps = [math.exp(v - top) for v in logits]
            aff[y][x] = [e / sum(exps) for e in exps]
    m = mask[0].tolist()
    for _ in range(steps):
        m = [[[sum(a * at(m, c, y + oy, x + ox) for a, (oy, ox) in zip(aff[y][x], neighbours))
               for x in range(w)] for y in range(h)] for c in range(c_ch)]
    return torch.tensor(m, dtype=torch.float64)[None]


@pytest.mark.parametrize("dilations", [(1,), (1, 2)])
def test_pamr_matches_an_independent_loop(dilations):
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 5, 6, generator=gen)
    mask = torch.randn(1, 4, 5, 6, generator=gen)
    ours = pamr(image, mask, steps=3, dilations=dilations)
    ref = loop_pamr(image.double(), mask.double(), 3, dilations)
    torch.testing.assert_close(ours.double(), ref, atol=1e-5, rtol=1e-5)


def test_flat_image_averages_the_eight_neighbours():
    # sigma = 0 and every difference 0: uniform affinity 1/8, one step = mean of the 8 replicate-padded neighbours.
    image = torch.ones(1, 3, 3, 3)
    mask = torch.arange(9.0).view(1, 1, 3, 3)
    out = pamr(image, mask, steps=1, dilations=(1,))
    # centre pixel (value 4): neighbours 0,1,2,3,5,6,7,8 -> mean 4; corner (0,0): neighbours with clamping
    # (-1,-1)->0, (-1,0)->0, (-1,1)->1, (0,-1)->0, (0,1)->1, (1,-1)->3, (1,0)->3, (1,1)->4 -> 12/8
    assert out[0, 0, 1, 1].item() == pytest.approx(4.0)
    assert out[0, 0, 0, 0].item() == pytest.approx(12 / 8)


def test_mask_is_resized_to_the_image_and_keeps_its_dtype():
    image = torch.randn(1, 3, 8, 8)
    mask = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    out = pamr(image, mask, steps=2, dilations=(1, 2))
    assert out.shape == (1, 2, 8, 8) and out.dtype == torch.float64


def test_options_are_checked():
    with pytest.raises(ConfigError, match="steps"):
        pamr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4), steps=-1)
    with pytest.raises(ConfigError, match="dilations"):
        pamr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4), dilations=(0,))
