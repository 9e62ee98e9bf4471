"""CAL heatmap decoders and poolings against hand computations of the paper's Eq. 3 / Eq. 4 (METHOD_SPEC 6)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components.anchors import (
    ConvHeatmapDecoder,
    QueryHeatmapDecoder,
    mask_pooling,
    masks_to_grid,
)
from methods.components.proposals import sine_position_encoding


def _inputs(b=2, n=6, d=16, gh=3, gw=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(b, d, gh, gw, generator=g), dim=1)
    masks = torch.rand(b, n, gh, gw, generator=g)
    masks[:, 0, 0] = 0.0  # a row outside proposal 0
    return feats, masks


def _randomise(module: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial values everywhere (LayerNorm affine and biases included), so the hand computation checks
    every term."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _mha_by_hand(x_q, x_k, x_v, in_w, in_b, out_w, out_b, heads):
    d = x_q.shape[-1]
    hd = d // heads
    q = x_q @ in_w[:d].T + in_b[:d]
    k = x_k @ in_w[d:2 * d].T + in_b[d:2 * d]
    v = x_v @ in_w[2 * d:].T + in_b[2 * d:]
    outs = []
    for h in range(heads):
        s = slice(h * hd, (h + 1) * hd)
        a = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(hd), dim=-1)
        outs.append(a @ v[:, s])
    return torch.cat(outs, -1) @ out_w.T + out_b


def _eq3_by_hand(dec: QueryHeatmapDecoder, feats: torch.Tensor, masks: torch.Tensor, heads: int):
    """Eq. 3 per image and head: H = softmax(q F^T / sqrt(d_head)) * M, pooled = sum_l H(l) F(l), L2 norm."""
    out = dec.out_layer
    b, d, gh, gw = feats.shape
    pos = sine_position_encoding(1, gh, gw, d // 2)[0].flatten(1).T.double()
    qpos = dec.query_embed.weight.double()
    pooled_all, heat_all = [], []
    for i in range(b):
        fv = feats[i].flatten(1).T.double()  # (L, D)
        m = masks[i].flatten(1).double()  # (N, L)
        sa = out.self_attn
        tgt = torch.zeros_like(qpos)
        tgt = tgt + _mha_by_hand(tgt + qpos, tgt + qpos, tgt, sa.in_proj_weight.double(), sa.in_proj_bias.double(),
                                 sa.out_proj.weight.double(), sa.out_proj.bias.double(), heads)
        tgt = F.layer_norm(tgt, (d,), out.norm1.weight.double(), out.norm1.bias.double())
        q = (tgt + qpos) @ out.q_proj.weight.double().T + out.q_proj.bias.double()
        k = (fv + pos) @ out.k_proj.weight.double().T + out.k_proj.bias.double()
        hd = d // heads
        pooled, heat = [], []
        for h in range(heads):
            s = slice(h * hd, (h + 1) * hd)
            hm = torch.softmax(q[:, s] @ k[:, s].T / math.sqrt(hd), dim=-1) * m
            heat.append(hm)
            pooled.append(hm @ fv[:, s])
        p = torch.cat(pooled, -1)
        pooled_all.append(p / p.norm(dim=-1, keepdim=True))
        heat_all.append(torch.stack(heat).mean(0).view(-1, gh, gw))
    return torch.stack(pooled_all), torch.stack(heat_all)


@pytest.mark.parametrize("heads", [1, 4])
def test_query_heatmap_output_layer_is_eq3(heads: int) -> None:
    feats, masks = _inputs()
    dec = QueryHeatmapDecoder(d_model=16, nheads=heads, dim_ff=32, num_layers=0, num_queries=6).eval()
    _randomise(dec)
    pooled, heat = dec(feats, masks)
    want_pooled, want_heat = _eq3_by_hand(dec, feats, masks, heads)
    assert torch.allclose(pooled.double(), want_pooled, atol=1e-5)
    assert torch.allclose(heat.double(), want_heat, atol=1e-6)
    assert torch.all(heat[:, 0, 0] == 0)  # outside the proposal the heatmap is zero
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(2, 6))


def test_query_decoder_with_k_layers_trains_its_parts_and_the_features() -> None:
    torch.manual_seed(0)
    feats, masks = _inputs()
    feats.requires_grad_(True)
    dec = QueryHeatmapDecoder(d_model=16, nheads=4, dim_ff=32, num_layers=2, num_queries=6)
    _randomise(dec)  # biases non-zero: the first layer's self-attention is not degenerate
    pooled, heat = dec(feats, masks)
    assert pooled.shape == (2, 6, 16) and heat.shape == (2, 6, 3, 4)
    (pooled * torch.randn_like(pooled)).sum().backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert feats.grad is not None and feats.grad.abs().sum() > 0  # reaches CLIP's visual prompts upstream
    assert not hasattr(dec.out_layer, "v_proj")  # values are the raw features


def test_query_decoder_rejects_a_mask_count_other_than_its_queries() -> None:
    feats, masks = _inputs(n=5)
    with pytest.raises(ConfigError, match="num_queries"):
        QueryHeatmapDecoder(d_model=16, nheads=4, dim_ff=32, num_layers=1, num_queries=6)(feats, masks)


def test_conv_decoder_paper_is_eq4() -> None:
    feats, masks = _inputs(d=8)
    dec = ConvHeatmapDecoder(d=8, num_layers=2, variant="paper").eval()
    _randomise(dec)
    with torch.no_grad():
        for bn in (dec.blocks[1], dec.blocks[4]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    pooled, heat = dec(feats, masks)
    b, n = masks.shape[:2]
    for i in range(b):
        for j in range(n):
            x = feats[i:i + 1] * masks[i, j]
            for conv, bn in ((dec.blocks[0], dec.blocks[1]), (dec.blocks[3], dec.blocks[4])):
                x = F.conv2d(x, conv.weight, padding=1)
                x = (x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
                x = torch.relu(x * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
            logits = F.conv2d(x, dec.head.weight, dec.head.bias, padding=1).flatten()
            h = torch.softmax(logits, 0)
            assert torch.allclose(heat[i, j].flatten(), h, atol=1e-6)
            p = feats[i].flatten(1) @ h
            assert torch.allclose(pooled[i, j], p / p.norm(), atol=1e-5)


def test_conv_decoder_released_variant() -> None:
    feats, masks = _inputs(d=8)
    dec = ConvHeatmapDecoder(d=8, num_layers=3, variant="released")
    assert dec.activation == "sigmoid" and len(dec.blocks) == 0 and dec.head.bias is None
    pooled, heat = dec(feats, masks)
    x = feats[1:2] * masks[1, 2]
    logits = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), dec.head.weight).flatten()
    h = torch.sigmoid(logits)
    assert torch.allclose(heat[1, 2].flatten(), h, atol=1e-6)
    assert torch.allclose(pooled[1, 2], feats[1].flatten(1) @ h, atol=1e-5)  # not normalised
    assert ConvHeatmapDecoder(d=8, variant="released", activation="softmax")(feats, masks)[1].flatten(2).sum(
        -1).allclose(torch.ones(2, 6))
    with pytest.raises(ConfigError):
        ConvHeatmapDecoder(d=8, variant="other")  # type: ignore[arg-type]


def test_mask_pooling_and_grid_masks() -> None:
    feats, masks = _inputs()
    pooled = mask_pooling(feats, masks)
    for i in range(2):
        for j in range(6):
            p = sum(masks[i, j, y, x] * feats[i, :, y, x] for y in range(3) for x in range(4))
            assert torch.allclose(pooled[i, j], p / p.norm(), atol=1e-6)
    logits = torch.randn(1, 2, 12, 16) * 4
    grid = masks_to_grid(logits, (3, 4))
    assert torch.allclose(grid, F.interpolate(logits.sigmoid(), size=(3, 4), mode="bilinear", align_corners=False))
    assert not torch.allclose(grid, F.interpolate(logits, size=(3, 4), mode="bilinear").sigmoid())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_decoders_under_cpu_autocast_stay_close_to_fp32(dtype: torch.dtype) -> None:
    feats, masks = _inputs(d=32, gh=6, gw=6)
    for dec in (QueryHeatmapDecoder(d_model=32, nheads=4, dim_ff=64, num_layers=1, num_queries=6).eval(),
                ConvHeatmapDecoder(d=32, num_layers=1).eval()):
        ref_pooled, ref_heat = dec(feats, masks)
        with torch.autocast("cpu", dtype=dtype):
            pooled, heat = dec(feats, masks)
        assert torch.isfinite(pooled).all() and torch.isfinite(heat).all()
        assert torch.allclose(pooled.float(), ref_pooled, atol=0.05)
        assert torch.allclose(heat.float(), ref_heat, atol=0.02)
