"""SimBaseline's region crops, CLIP region scores and geometric ensemble (METHOD_SPEC 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components.regions import (
    CLIP_MEAN_255,
    CLIP_STD_255,
    clip_region_probs,
    ensemble,
    mask_boxes,
    region_crops,
    scatter_to_queries,
)


def _scene(seed: int = 0, h: int = 37, w: int = 53):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, h, w, generator=g) * 255
    probs = torch.zeros(5, h, w)
    probs[0, 5:20, 10:30] = 0.9  # a rectangle
    probs[0, 12, 40] = 0.7  # plus a far pixel: the box spans both
    probs[1, 0, 0] = 0.8  # a single pixel in the corner
    probs[2] = 0.5  # exactly the threshold: empty (the test is "> 0.5")
    probs[3, 30:, 45:] = torch.rand(h - 30, w - 45, generator=g)  # ragged, touches the border
    probs[4, :, :] = 0.2  # empty
    return image, probs


def _official_crop(image: np.ndarray, mask: np.ndarray, size: int = 224, fill=CLIP_MEAN_255) -> torch.Tensor:
    """[S] crop_with_mask then normalise then bicubic resize, step by step in 0-255 space."""
    ys, xs = np.nonzero(mask)
    t, b, left, r = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    m = mask[t:b, left:r].astype(np.float64)[None]
    fill = np.array(fill).reshape(3, 1, 1)
    region = image[:, t:b, left:r] * m + (1 - m) * fill
    region = (region - np.array(CLIP_MEAN_255).reshape(3, 1, 1)) / np.array(CLIP_STD_255).reshape(3, 1, 1)
    return F.interpolate(torch.from_numpy(region)[None].float(), size=(size, size), mode="bicubic",
                         align_corners=False)[0]


@pytest.mark.parametrize("fill", [CLIP_MEAN_255, (0.0, 255.0, 30.0)], ids=["mean", "other"])
def test_region_crops_follow_the_official_recipe(fill) -> None:
    image, probs = _scene()
    crops, keep = region_crops(image, probs, fill=fill)
    assert keep.tolist() == [0, 1, 3]
    assert crops.shape == (3, 3, 224, 224) and crops.dtype == torch.float32
    for crop, n in zip(crops, keep.tolist()):
        want = _official_crop(image.double().numpy(), (probs[n] > 0.5).numpy(), fill=fill)
        assert torch.allclose(crop, want, atol=1e-4), n
    # the single-pixel crop is its pixel's normalised colour everywhere
    pixel = (image[:, 0, 0] - torch.tensor(CLIP_MEAN_255)) / torch.tensor(CLIP_STD_255)
    assert torch.allclose(crops[1], pixel.view(3, 1, 1).expand(3, 224, 224), atol=1e-4)


def test_region_crops_threshold_size_and_empty() -> None:
    image, probs = _scene()
    crops, keep = region_crops(image, probs, threshold=0.4, size=32)
    assert keep.tolist() == [0, 1, 2, 3] and crops.shape == (4, 3, 32, 32)
    none, keep = region_crops(image, torch.zeros(4, 37, 53))
    assert none.shape == (0, 3, 224, 224) and keep.numel() == 0
    with pytest.raises(ConfigError, match="same H,W"):
        region_crops(image, probs[:, :10])


def test_mask_boxes_are_tight_with_exclusive_ends() -> None:
    _, probs = _scene()
    binary = probs > 0.5
    boxes = mask_boxes(binary)
    for n in range(5):
        ys, xs = np.nonzero(binary[n].numpy())
        want = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(ys) else [0, 0, 0, 0]
        assert boxes[n].tolist() == want


def test_region_crops_under_autocast_match_fp32() -> None:
    image, probs = _scene()
    ref, _ = region_crops(image, probs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        crops, _ = region_crops(image, probs)
    assert torch.allclose(crops.float(), ref, atol=1e-3)


def test_clip_region_probs_drop_void_before_softmax_in_one_call() -> None:
    g = torch.Generator().manual_seed(1)
    proj = torch.randn(3, 8, generator=g)
    calls = []

    def encode(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x.mean(dim=(2, 3)) @ proj

    crops = torch.randn(5, 3, 4, 4, generator=g)
    text, void = torch.randn(4, 8, generator=g), torch.randn(8, generator=g)
    probs = clip_region_probs(encode, crops, text, void)
    assert calls == [5]
    feats = F.normalize(crops.mean(dim=(2, 3)) @ proj, dim=-1)
    want = torch.softmax(100 * feats @ F.normalize(text, dim=-1).T, dim=-1)
    assert torch.allclose(probs, want, atol=1e-5)
    assert torch.allclose(clip_region_probs(encode, crops, text, None, chunk_size=2), want, atol=1e-5)
    assert calls[1:] == [2, 2, 1]


def test_scatter_to_queries_fills_ones() -> None:
    p = torch.tensor([[0.2, 0.8], [0.6, 0.4]])
    full, valid = scatter_to_queries(p, torch.tensor([1, 3]), 4)
    assert torch.equal(full, torch.tensor([[1.0, 1.0], [0.2, 0.8], [1.0, 1.0], [0.6, 0.4]]))
    assert valid.tolist() == [False, True, False, True]


def test_ensemble_is_the_official_geometric_mean() -> None:
    g = torch.Generator().manual_seed(2)
    p_mask = torch.rand(4, 3, generator=g)
    p_clip = torch.rand(4, 3, generator=g)
    seen = torch.tensor([True, False, True])
    valid = torch.tensor([True, False, True, True])
    lam = 0.8
    out = ensemble(p_mask, p_clip, seen, lam, valid)
    for q in range(4):
        for c in range(3):
            pc = p_clip[q, c].item() if valid[q] else 1.0
            pm = p_mask[q, c].item()
            want = pm**lam * pc ** (1 - lam) if seen[c] else pm ** (1 - lam) * pc**lam
            assert out[q, c].item() == pytest.approx(want, rel=1e-5)
    cross = ensemble(p_mask, p_clip, None, 0.4)  # no seen flags: every class is "unseen"
    assert torch.allclose(cross, p_mask**0.6 * p_clip**0.4)
    clip_only = ensemble(p_mask, p_clip, seen, 0.0, valid)
    assert torch.equal(clip_only[valid], p_clip[valid]) and clip_only[~valid].abs().sum() == 0


@pytest.mark.parametrize("length", [1, 2, 3, 50, 224, 300, 683])
def test_bicubic_matrix_is_torch_bicubic_resize(length):
    """Issue 24: the batched crops' weights are PyTorch's bicubic resize (align_corners False, A = -0.75, taps
    clamped to the box) as a matrix: applied to a vector, F.interpolate's result to float rounding."""
    from methods.components.regions import bicubic_matrix

    v = torch.rand(length, generator=torch.Generator().manual_seed(length)) * 6 - 3
    ref = torch.nn.functional.interpolate(v.view(1, 1, 1, -1), size=(1, 224), mode="bicubic",
                                          align_corners=False).flatten()
    padded = torch.cat([torch.full((7,), 100.0), v, torch.full((5,), -100.0)])  # a box inside a longer line
    matrix = bicubic_matrix(torch.tensor([7]), torch.tensor([7 + length]), 224, padded.numel())[0]
    torch.testing.assert_close(matrix @ padded, ref, rtol=0, atol=5e-5)  # 1e-5 of the range: float rounding


def test_batched_crops_equal_the_crop_by_crop_loop():
    """All crops cut and resized at once (the default off a CPU) give the loop's crops: within 2e-4 on values of
    about +-3 (float rounding: the two sum the same products in another order), the same kept proposals, and the
    host reads one value (N', one nonzero) where the loop reads every box."""
    from harness.speed_prep import count_sync_ops

    g = torch.Generator().manual_seed(0)
    h, w, n = 96, 128, 12
    image = torch.rand(3, h, w, generator=g) * 255
    probs = torch.zeros(n, h, w)
    for i in range(n - 2):  # two empty masks
        y1, x1 = int(torch.randint(0, h - 2, (1,), generator=g)), int(torch.randint(0, w - 2, (1,), generator=g))
        y2 = y1 + 1 + int(torch.randint(0, h - y1 - 1, (1,), generator=g))
        x2 = x1 + 1 + int(torch.randint(0, w - x1 - 1, (1,), generator=g))
        probs[i, y1:y2, x1:x2] = torch.rand(y2 - y1, x2 - x1, generator=g)
    loop, keep_loop = region_crops(image, probs, batched=False)
    batched, keep = region_crops(image, probs, batched=True)
    assert torch.equal(keep, keep_loop) and keep.numel() == n - 2
    torch.testing.assert_close(batched, loop, rtol=0, atol=2e-4)
    counts = count_sync_ops(lambda: region_crops(image, probs, batched=True))
    assert counts.get("aten::nonzero") == 1 and "aten::_local_scalar_dense" not in counts
