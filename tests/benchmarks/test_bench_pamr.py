"""Micro-benchmark: NACLIP's PAMR (10 steps, dilations 8 and 16) on a 480x640 image with COCO-Stuff's 171 class
channels. Run with `pytest tests/benchmarks/test_bench_pamr.py --benchmark-enable`; by default (benchmarks
disabled) the body runs once as a smoke test, on 8 channels. Issue 28: 2.8 s of CPU time on one thread here (24.2 s before)."""

from __future__ import annotations

import torch

from methods.components.pamr import pamr


def test_bench_pamr_naclip_coco_stuff(benchmark):
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 480, 640, generator=gen)
    channels = 8 if benchmark.disabled else 171
    logits = torch.randn(1, channels, 30, 40, generator=gen)
    out = benchmark.pedantic(pamr, args=(image, logits), rounds=3, warmup_rounds=1)
    assert out.shape == (1, channels, 480, 640) and torch.isfinite(out).all()
    # each step is a convex combination of neighbours: values stay within the upsampled logits' range
    assert out.min() >= logits.min() - 1e-5 and out.max() <= logits.max() + 1e-5
