"""The speed protocol's FLOP counter over timm's DINO and DINOv2 ViTs (ProxyCLIP's and LPOSS's DINO stage,
Talk2DINO's DINOv2 stage) against multiply-accumulates written out here for a tiny ViT.

Per block, N tokens (CLS and registers included) of width D, MLP ratio 4: Q, K, V projections 3 N D^2, Q K^T and
A V N^2 D each (over all heads), the output projection N D^2, the MLP 2 N D 4D: 12 N D^2 + 2 N^2 D. The patch
embedding is a convolution: P patches x (3 p^2) x D. Normalisations, GELU, softmax and the layer scale are not
multiply-accumulates the counter counts (its convention, as for CLIP in test_clip_flops.py)."""

from __future__ import annotations

import pytest
import torch

from harness.speed import StageTimer
from methods.components.dino import DinoFeatures, build_dino
from methods.components.talk2dino import DinoV2Patches, build_dinov2


def vit_macs(height: int, width: int, *, patch: int, dim: int, depth: int, prefix: int) -> int:
    patches = (height // patch) * (width // patch)
    n = patches + prefix
    return patches * 3 * patch * patch * dim + depth * (12 * n * dim * dim + 2 * n * n * dim)


def stage_macs(module, x) -> int:
    timer = StageTimer(torch.device("cpu"), count_flops=True)
    with torch.no_grad(), timer("dino"):
        module(x)
    assert timer.flops["dino"] % 2 == 0
    return timer.flops["dino"] // 2


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_dino_stage_counts_the_hand_formula(size):
    dino, _ = build_dino("tiny-dino-p8", "random", seed=0)
    # tiny-dino-p8: patch 8, width 32, 2 blocks, the CLS token only
    assert (dino.embed_dim, len(dino.blocks), dino.num_prefix_tokens) == (32, 2, 1)
    x = torch.rand(1, 3, *size)
    assert stage_macs(DinoFeatures(dino), x) == vit_macs(*size, patch=8, dim=32, depth=2, prefix=1)


def test_dinov2_stage_counts_the_hand_formula_plus_the_cls_attention_map():
    """Talk2DINO's DINOv2 with 4 registers (5 prefix tokens); DinoV2Patches also multiplies the last block's
    queries with its keys again for the CLS attention map (all N x N, of which row 0 is kept): N^2 D more."""
    dinov2, _ = build_dinov2("tiny-dinov2-reg-p14", "random", seed=0)
    assert (dinov2.embed_dim, len(dinov2.blocks), dinov2.num_prefix_tokens) == (32, 2, 5)
    size = (56, 84)
    n = (56 // 14) * (84 // 14) + 5
    expected = vit_macs(*size, patch=14, dim=32, depth=2, prefix=5) + n * n * 32
    assert stage_macs(DinoV2Patches(dinov2), torch.rand(1, 3, *size)) == expected
