"""PAMR pinned against an independent per-pixel loop, a case computed by hand, and the whole-mask implementation it
replaced (issue 28), kept here as the reference: equal to float32 rounding (fused multiply-adds), and bit for bit
however the channels are chunked or threaded."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components import pamr as pamr_module
from methods.components.pamr import pamr, pamr_affinity


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


def whole_mask_pamr(image, mask, steps, dilations):
    """The implementation before issue 28 (commit 3b19463), verbatim but for names: every step pads the whole
    mask once per dilation and accumulates a * shifted over the neighbours, one full-size product at a time."""
    def offsets(centre):
        return [(d, dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                if centre or (dy, dx) != (0, 0)]

    def shifted(padded, d, dy, dx, size):
        h, w = size
        return padded[d][..., d + dy:d + dy + h, d + dx:d + dx + w]

    def replicate_padded(t):
        return {d: F.pad(t, [d] * 4, mode="replicate") for d in dict.fromkeys(dilations)}

    image = image.float()
    size = tuple(image.shape[-2:])
    mask = F.interpolate(mask.float(), size=size, mode="bilinear", align_corners=True)
    affinity = pamr_affinity(image, dilations)
    for _ in range(steps):
        padded = replicate_padded(mask)
        refined = torch.zeros_like(mask)
        for p, offset in enumerate(offsets(centre=False)):
            refined += affinity[:, p:p + 1] * shifted(padded, *offset, size)
        mask = refined
    return mask


@pytest.mark.parametrize(("chunk_channels", "dilations"), [(1, (8, 16)), (3, (8, 16)), (64, (1, 2)), (2, (3,))])
def test_chunked_refinement_equals_the_whole_mask_one(monkeypatch, chunk_channels, dilations):
    # NACLIP's dilations on an image smaller than twice the padding (the border fill is exercised), and chunks
    # that do and do not divide the channel count: equal to the old code to rounding, to one chunk bit for bit.
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, 37, 45, generator=gen)
    mask = torch.randn(2, 7, 9, 12, generator=gen) * 5
    padded = (37 + 2 * max(dilations)) * (45 + 2 * max(dilations))
    monkeypatch.setattr(pamr_module, "CHUNK_BYTES", 4 * 2 * padded * chunk_channels)
    ours = pamr(image, mask, steps=4, dilations=dilations)
    torch.testing.assert_close(ours, whole_mask_pamr(image, mask, 4, dilations), rtol=0, atol=5e-6)
    monkeypatch.setattr(pamr_module, "CHUNK_BYTES", 1 << 40)
    assert torch.equal(ours, pamr(image, mask, steps=4, dilations=dilations))


def test_affinity_equals_the_stacked_formula():
    # The previous pamr_affinity (stack every shifted image, std over the stack, mean of the scaled differences):
    # the running sums reorder the float32 additions only.
    gen = torch.Generator().manual_seed(4)
    image = torch.randn(2, 3, 41, 50, generator=gen)
    dilations = (8, 16)
    padded = F.pad(image, [16] * 4, mode="replicate")
    offsets = [(dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    shifted = [padded[..., 16 + oy:16 + oy + 41, 16 + ox:16 + ox + 50] for oy, ox in offsets]
    sigma = torch.stack(shifted, dim=2).std(dim=2)
    diffs = torch.stack([(image - s).abs() for s, o in zip(shifted, offsets) if o != (0, 0)], dim=2)
    expected = (-diffs / (1e-8 + 0.1 * sigma.unsqueeze(2))).mean(dim=1).softmax(dim=1)
    torch.testing.assert_close(pamr_affinity(image, dilations), expected, rtol=1e-5, atol=1e-6)


def test_replicate_border_matches_torch_replicate_padding():
    gen = torch.Generator().manual_seed(2)
    interior = torch.randn(2, 3, 4, 5, generator=gen)
    pad = 6  # wider than the interior: every border value is a clamped copy
    buffer = torch.full((2, 3, 4 + 2 * pad, 5 + 2 * pad), float("nan"))
    buffer[..., pad:pad + 4, pad:pad + 5] = interior
    pamr_module._replicate_border(buffer, pad)
    assert torch.equal(buffer, F.pad(interior, [pad] * 4, mode="replicate"))


def test_chunks_spread_over_threads_change_nothing_and_the_thread_count_is_restored(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    image = torch.randn(1, 3, 40, 44, generator=gen)
    mask = torch.randn(1, 9, 10, 11, generator=gen)
    monkeypatch.setattr(pamr_module, "CHUNK_BYTES", 4 * 2 * (40 + 32) * (44 + 32))  # 2 channels a chunk: 5 chunks
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ours = pamr(image, mask, steps=3, dilations=(8, 16))
        with torch.inference_mode():  # as the speed task calls it: the worker threads must run in it too
            inferred = pamr(image, mask, steps=3, dilations=(8, 16))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(pamr_module, "CHUNK_BYTES", 1 << 40)  # one chunk, the calling thread
    assert torch.equal(ours, pamr(image, mask, steps=3, dilations=(8, 16))) and torch.equal(inferred, ours)
    torch.testing.assert_close(ours, whole_mask_pamr(image, mask, 3, (8, 16)), rtol=0, atol=5e-6)
