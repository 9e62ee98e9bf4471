"""Micro-benchmarks: attention rules at ViT-B/16 size on a 512x512 input, and the text encoder with and without
EOS truncation at CLIP ViT-B/16 text-tower size. Run with `pytest tests/benchmarks --benchmark-enable`;
by default (benchmarks disabled) each body runs once as a smoke test."""

from __future__ import annotations

import open_clip
import pytest
import torch
from torch import nn

from methods.components.clip_dense import GPS, MPS, CoverageIdentity, Vanilla
from methods.components.text import TextEncoder

VOC_NAMES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
             "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


@pytest.fixture(scope="module")
def vit_b16_block_inputs():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(768, 12, batch_first=True).eval()
    tokens = torch.randn(1, 1 + 32 * 32, 768)  # 512x512 input, patch 16
    masks = torch.rand(1, 1 + 32 * 32, 100)  # 100 proposals as probabilities, CLS row included
    return attn, tokens, masks


@pytest.mark.parametrize("rule", [Vanilla(), GPS(0.5), GPS(1.0), CoverageIdentity(), MPS()],
                         ids=["vanilla", "gps0.5", "gps1", "coverage", "mps"])
def test_bench_attention_rule(benchmark, vit_b16_block_inputs, rule):
    attn, tokens, masks = vit_b16_block_inputs
    with torch.no_grad():
        out = benchmark(rule.mix, tokens, attn, masks)
    assert out.shape == tokens.shape and torch.isfinite(out).all()


@pytest.fixture(scope="module")
def vit_b16_text_clip():
    torch.manual_seed(0)
    # Text tower of ViT-B-16 (width 512, 12 layers, 8 heads); a token-sized image tower keeps the build cheap.
    model = open_clip.CLIP(
        embed_dim=512,
        vision_cfg={"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
        quick_gelu=True,
    )
    return model.eval()


@pytest.mark.parametrize("truncate", [True, False], ids=["truncated", "full77"])
def test_bench_learnable_text_encoder(benchmark, vit_b16_text_clip, truncate):
    enc = TextEncoder(vit_b16_text_clip, "learnable", n_ctx=16, truncate=truncate).eval()
    with torch.no_grad():
        out = benchmark.pedantic(enc, args=(VOC_NAMES,), setup=enc.clear_cache, rounds=5, warmup_rounds=1)
    assert out.shape == (20, 512)


def test_bench_text_encoder_cache_hit(benchmark, vit_b16_text_clip):
    enc = TextEncoder(vit_b16_text_clip, "learnable", n_ctx=16).eval()
    with torch.no_grad():
        first = enc(VOC_NAMES)
        out = benchmark(enc, VOC_NAMES)
    assert out is first
