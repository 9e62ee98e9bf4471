"""DenseCLIP under low precision (autocast, bf16/fp16 weights) and on CUDA, against its fp32 CPU forward."""

from __future__ import annotations

import copy

import pytest
import torch

from methods.components.clip_dense import GPS, MPS, CoverageIdentity, DenseCLIP
from methods.components.weights import build_clip


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_stays_close_to_fp32(clip16, dtype):
    dense = DenseCLIP(clip16, prompt_layers=(1,), attention_rules={1: GPS(0.5), -1: MPS()})
    x, masks = torch.rand(2, 3, 64, 96) * 255, torch.randn(2, 6, 16, 24)
    reference = dense(x, masks).patch_features
    with torch.autocast("cpu", dtype=dtype):
        low = dense(x, masks).patch_features
    assert low.dtype == dtype
    cosine = (low.float() * reference).sum(dim=1)
    assert cosine.min() > 0.99


@pytest.mark.parametrize("precision", ["bf16", "fp16", "pure_bf16"])
def test_low_precision_weights_run_without_autocast(clip16, precision):
    model, _ = build_clip("tiny-vit-p16", "random", seed=1, precision=precision)
    rules = {0: CoverageIdentity(), 1: GPS(0.5), -1: MPS()}
    x, masks = torch.rand(1, 3, 64, 80) * 255, torch.randn(1, 5, 16, 20)
    low = DenseCLIP(model, attention_rules=rules, input_prompt=True, prompt_init="zeros")(x, masks)
    reference = DenseCLIP(clip16, attention_rules=rules)(x, masks)
    assert (low.patch_features.float() * reference.patch_features).sum(dim=1).min() > 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp32_and_bf16(clip16):
    model = copy.deepcopy(clip16).cuda()
    x = torch.randn(2, 3, 64, 64, device="cuda")
    masks = torch.randn(2, 5, 16, 16, device="cuda")
    dense = DenseCLIP(model, attention_rules={-1: MPS(), 1: GPS(0.3)}, prompt_layers=(1,)).cuda()
    out = dense(x, masks, normalised=True)
    ref = DenseCLIP(copy.deepcopy(clip16), attention_rules={-1: MPS(), 1: GPS(0.3)}, prompt_layers=(1,))
    ref.load_state_dict(dense.state_dict())
    torch.testing.assert_close(out.patch_features.cpu(), ref(x.cpu(), masks.cpu(), normalised=True).patch_features,
                               atol=1e-4, rtol=0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = dense(x, masks, normalised=True).patch_features
    assert (low.float() * out.patch_features).sum(1).min() > 0.99
