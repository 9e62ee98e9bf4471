"""Train/test transforms: detectron2's resize rule, crop/flip/pad geometry, colour jitter, determinism."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from harness.data.info import TrainSettings
from harness.data.transforms import (
    color_aug_ssd,
    hsv_to_rgb,
    inference_transform,
    pad_to_size,
    resize_label,
    resize_output_shape,
    resize_shortest_edge,
    rgb_to_hsv,
    train_transform,
)


@pytest.mark.parametrize("hw,short,max_size,expected", [
    ((480, 640), 512, 2560, (512, 683)),  # 640 * 512/480 = 682.67 -> 683
    ((640, 480), 512, 2560, (683, 512)),
    ((100, 1000), 512, 2048, (205, 2048)),  # long side capped: scale 2048/5120 -> 204.8 -> 205
    ((512, 512), 512, 2048, (512, 512)),
])
def test_resize_output_shape_is_detectron2s_rule(hw, short, max_size, expected):
    assert resize_output_shape(*hw, short, max_size) == expected


def test_label_resize_never_invents_values():
    label = torch.randint(0, 5, (37, 53))
    label[label == 4] = 255
    out = resize_label(label, (80, 111))
    assert set(out.unique().tolist()) <= set(label.unique().tolist())
    # integer upscaling by 2 with pixel-centre sampling repeats every pixel exactly
    np.testing.assert_array_equal(resize_label(label, (74, 106))[::2, ::2].numpy(), label.numpy())


def test_pad_to_size_pads_with_128_and_ignore_or_trims():
    image = torch.full((3, 5, 7), 9, dtype=torch.uint8)
    label = torch.zeros((5, 7), dtype=torch.int64)
    img, lab = pad_to_size(image, label, 8, ignore_index=255)
    assert img.shape == (3, 8, 8) and lab.shape == (8, 8)
    assert (img[:, 5:, :] == 128).all() and (img[:, :, 7:] == 128).all() and (img[:, :5, :7] == 9).all()
    assert (lab[5:, :] == 255).all() and (lab[:5, :7] == 0).all()
    img, lab = pad_to_size(torch.arange(100).reshape(1, 10, 10), torch.arange(100).reshape(10, 10), 4, 255)
    np.testing.assert_array_equal(lab.numpy(), np.arange(100).reshape(10, 10)[:4, :4])  # top-left kept


def _coded_pair(h=40, w=60):
    label = torch.randint(0, 6, (h, w))
    label[:3] = 255
    image = (label.clamp(max=10) * 20).to(torch.uint8).expand(3, h, w).clone()
    return image, label


def test_train_transform_keeps_image_and_label_aligned():
    # short side = image short side, so no resampling: the label must still be recoverable from the image
    settings = TrainSettings((40,), max_size=1000, crop_size=32, size_divisibility=36, color_aug_ssd=False)
    transform = train_transform(settings, ignore_index=255)
    image, label = _coded_pair()
    for seed in range(6):
        img, lab = transform(image, label, torch.Generator().manual_seed(seed))
        assert img.shape == (3, 36, 36) and lab.shape == (36, 36)
        inside = torch.zeros_like(lab, dtype=torch.bool)
        inside[:32, :32] = True
        assert (img[0][~inside] == 128).all() and (lab[~inside] == 255).all()
        assert torch.equal(img[0][inside].long(), lab[inside].clamp(max=10) * 20)


def test_train_transform_640_crop_is_trimmed_to_512_like_the_official_mapper():
    settings = TrainSettings((700,), max_size=2560, crop_size=640, size_divisibility=512)
    img, lab = train_transform(settings)(*_coded_pair(50, 70), torch.Generator().manual_seed(0))
    assert img.shape == (3, 512, 512) and lab.shape == (512, 512)
    assert (lab != 255).any()  # real content, not all padding


def test_train_transform_is_deterministic_under_a_seed():
    settings = TrainSettings((32, 40, 48), max_size=100, crop_size=32, size_divisibility=32)
    transform = train_transform(settings)
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    label = torch.randint(0, 5, (40, 60))
    a = transform(image, label, torch.Generator().manual_seed(7))
    b = transform(image, label, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    outs = {transform(image, label, torch.Generator().manual_seed(s))[0].float().sum().item() for s in range(8)}
    assert len(outs) > 4  # different seeds draw different augmentations


def test_inference_transform_resizes_the_image_only():
    image, label = _coded_pair(30, 45)
    img, lab = inference_transform(64, 1000)(image, label)
    assert img.shape == (3, 64, 96) and lab is label


def test_hsv_conversion_matches_colorsys_and_round_trips():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 8, 8)).astype(np.float32)
    hsv = rgb_to_hsv(torch.from_numpy(rgb))
    for y in range(8):
        for x in range(8):
            h, s, v = colorsys.rgb_to_hsv(*(rgb[:, y, x] / 255))
            assert hsv[0, y, x].item() == pytest.approx(h * 360, abs=1e-3)
            assert hsv[1, y, x].item() == pytest.approx(s, abs=1e-5)
            assert hsv[2, y, x].item() == pytest.approx(v * 255, abs=1e-3)
    np.testing.assert_allclose(hsv_to_rgb(hsv).numpy(), rgb, atol=1e-3)


def test_color_aug_is_photometric_only_and_seeded():
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    outs = [color_aug_ssd(image, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(o.shape == image.shape and o.dtype == torch.uint8 for o in outs)
    assert any(not torch.equal(o, image) for o in outs)
    assert torch.equal(color_aug_ssd(image, torch.Generator().manual_seed(3)), outs[3])
    grey = torch.full((3, 4, 4), 100, dtype=torch.uint8)  # hue/saturation leave grey grey
    for s in range(20):
        out = color_aug_ssd(grey, torch.Generator().manual_seed(s))
        assert (out == out[0:1]).all()


def test_resize_shortest_edge_keeps_label_none():
    img, lab = resize_shortest_edge(torch.zeros((3, 10, 20), dtype=torch.uint8), None, 20, 100)
    assert img.shape == (3, 20, 40) and lab is None
