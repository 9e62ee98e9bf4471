"""Sliding-window inference pinned against a hand-written transcription of mmseg's slide loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components.sliding import SlideConfig, slide_logits, symmetric_padding, window_count, windows


def window_model(seed: int = 0):
    """A deterministic per-window 'model' whose output depends on the window's content and size: a 3x3 conv,
    a pooling to a 4x-coarser grid (as a ViT would) and bilinear upsampling back to the window."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(5, 3, 3, 3, generator=gen)
    calls = []

    def fn(crops):
        calls.append(tuple(crops.shape))
        x = F.conv2d(crops, weight, padding=1)
        x = F.avg_pool2d(x, 4, ceil_mode=True) + x.mean(dim=(2, 3), keepdim=True)
        return F.interpolate(x, size=crops.shape[-2:], mode="bilinear", align_corners=False)

    return fn, calls


def mmseg_loop(img, fn, crop, stride):
    """mmseg EncoderDecoder.slide_inference (as NACLIP/SCLIP copy it), one window at a time."""
    h_img, w_img = img.shape[-2:]
    h_grids = max(h_img - crop + stride - 1, 0) // stride + 1
    w_grids = max(w_img - crop + stride - 1, 0) // stride + 1
    preds, count = None, torch.zeros(1, 1, h_img, w_img)
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * stride, w_idx * stride
            y2, x2 = min(y1 + crop, h_img), min(x1 + crop, w_img)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            out = fn(img[None, :, y1:y2, x1:x2])
            padded = F.pad(out, (x1, w_img - x2, y1, h_img - y2))
            preds = padded if preds is None else preds + padded
            count[:, :, y1:y2, x1:x2] += 1
    assert (count == 0).sum() == 0
    return (preds / count)[0], h_grids * w_grids


def test_window_count_formula_by_hand():
    assert window_count(336, 224, 112) == 2  # (336-224+111)//112 + 1
    assert window_count(500, 224, 112) == 4
    assert window_count(100, 224, 112) == 1  # smaller than the crop: one window, no padding
    boxes = windows(336, 500, SlideConfig(crop=224, stride=112))
    assert len(boxes) == 8
    assert [(b.x1, b.x2) for b in boxes[:4]] == [(0, 224), (112, 336), (224, 448), (276, 500)]  # last shifted in
    assert {(b.y1, b.y2) for b in boxes} == {(0, 224), (112, 336)}
    assert [(b.y1, b.y2, b.x1, b.x2) for b in windows(100, 150, SlideConfig(crop=224, stride=112))] == [
        (0, 100, 0, 150)]


@pytest.mark.parametrize("size", [(83, 130), (64, 64), (40, 71)])
def test_slide_equals_mmseg_loop_on_sizes_not_multiple_of_the_stride(size):
    img = torch.randn(3, *size, generator=torch.Generator().manual_seed(1))
    fn, calls = window_model()
    ours, n = slide_logits(img, fn, SlideConfig(crop=48, stride=20))
    fn_ref, _ = window_model()
    ref, n_ref = mmseg_loop(img, fn_ref, 48, 20)
    assert n == n_ref
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert sum(c[0] for c in calls) == n  # every window exactly once, batched


def test_batching_is_exact_and_bounded():
    img = torch.randn(3, 83, 130, generator=torch.Generator().manual_seed(2))
    fn, _ = window_model()
    full, _ = slide_logits(img, fn, SlideConfig(crop=48, stride=20))
    fn2, calls = window_model()
    one_by_one, _ = slide_logits(img, fn2, SlideConfig(crop=48, stride=20, max_batch=1))
    assert all(c[0] == 1 for c in calls)
    torch.testing.assert_close(full, one_by_one, atol=1e-6, rtol=1e-6)


def test_whole_equals_a_single_covering_window():
    img = torch.randn(3, 45, 70, generator=torch.Generator().manual_seed(3))
    fn, _ = window_model()
    whole, n_whole = slide_logits(img, fn, SlideConfig(mode="whole"))
    covering, n_cover = slide_logits(img, fn, SlideConfig(crop=80, stride=40))
    assert n_whole == n_cover == 1
    torch.testing.assert_close(whole, covering)
    torch.testing.assert_close(whole, fn(img[None])[0])


def test_padding_to_a_multiple_is_cropped_back():
    assert symmetric_padding(50, 45, 56) == (5, 6, 3, 3)  # ProxyCLIP: left/top get the smaller half
    img = torch.randn(3, 50, 45, generator=torch.Generator().manual_seed(4))
    seen = []

    def identity(crops):  # logits = the window itself: padding must be exactly undone
        seen.append(tuple(crops.shape[-2:]))
        return crops[:, :2]

    out, _ = slide_logits(img, identity, SlideConfig(mode="whole", pad_to=56))
    assert seen == [(56, 56)]
    torch.testing.assert_close(out, img[:2])


def test_options_are_checked():
    with pytest.raises(ConfigError, match="stride 300 exceeds"):
        SlideConfig(crop=224, stride=300)
    with pytest.raises(ConfigError, match="mode"):
        SlideConfig(mode="tiles")
    with pytest.raises(ConfigError, match="crop"):
        SlideConfig(crop=0)
