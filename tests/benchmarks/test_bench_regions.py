"""Micro-benchmark: SimBaseline's region crops for 100 proposals on a COCO test image (short side 640).
Run with `pytest tests/benchmarks/test_bench_regions.py --benchmark-enable`; by default (benchmarks disabled)
the body runs once as a smoke test."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from methods.components.regions import mask_boxes, region_crops


@pytest.fixture(scope="module")
def coco_sized_proposals() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 640, 853, generator=g) * 255
    # blob-like masks: smooth random fields (stride-4 logits upsampled as MaskFormer's), sigmoid
    logits = torch.randn(1, 100, 40, 54, generator=g) * 4 - 2
    probs = F.interpolate(logits, size=(640, 853), mode="bilinear", align_corners=False)[0].sigmoid()
    return image, probs


def test_bench_region_crops(benchmark, coco_sized_proposals) -> None:
    image, probs = coco_sized_proposals
    crops, keep = benchmark(region_crops, image, probs)
    assert crops.shape == (len(keep), 3, 224, 224) and len(keep) > 90
    assert torch.isfinite(crops).all()


def test_bench_mask_boxes(benchmark, coco_sized_proposals) -> None:
    _, probs = coco_sized_proposals
    boxes = benchmark(mask_boxes, probs > 0.5)
    assert boxes.shape == (100, 4) and (boxes[:, 2] >= boxes[:, 0]).all()
