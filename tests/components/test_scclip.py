"""SC-CLIP's parts (methods/components/scclip.py) against formulas written here from SuleBai/SC-CLIP @0417ba9
clip/model.py (lof_pytorch, mean_interpolation, adaptively_aggregate, custom_attn, forward) and, for the
textbook LOF, Breunig et al. 2000 (what scikit-learn implements); the whole encoder against open_clip's own blocks
followed by those formulas, on a tiny random CLIP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components.scclip import (
    PUBLISHED_LAYERS,
    SCCLIPEncoder,
    SCCLIPLayers,
    aggregate,
    default_layers,
    lof_outliers,
    mixed_attention,
    repair_outliers,
)
from methods.components.weights import build_clip


def points(n=40, c=4, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, c))
    x[:3] += 6.0 * g.normal(size=(3, c))  # a few far points
    return x


def official_lof_mask(x, k, contamination):
    """lof_pytorch written out: squared distances, reach = own k-distance, LRD = k / mean reach."""
    n = len(x)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    nbrs = [np.argsort(d[i], kind="stable")[1:k + 1] for i in range(n)]
    kdist = np.array([d[i, nbrs[i]].max() for i in range(n)])
    lrd = np.array([k / np.mean([max(d[i, j], kdist[i]) for j in nbrs[i]]) for i in range(n)])
    lof = np.array([np.mean([lrd[j] / lrd[i] for j in nbrs[i]]) for i in range(n)])
    return lof > np.quantile(lof, 1 - contamination)


def textbook_lof_mask(x, k, contamination):
    """Breunig et al.: reach(p, o) = max(k-dist(o), d(p, o)), lrd = 1 / mean reach, LOF = mean lrd_o / lrd_p;
    scikit-learn flags the `contamination` share with the highest LOF (offset = percentile of -LOF)."""
    n = len(x)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    nbrs = [np.argsort(d[i], kind="stable")[1:k + 1] for i in range(n)]
    kdist = np.array([d[i, nbrs[i]].max() for i in range(n)])
    lrd = np.array([1 / np.mean([max(kdist[j], d[i, j]) for j in nbrs[i]]) for i in range(n)])
    lof = np.array([np.mean(lrd[nbrs[i]]) / lrd[i] for i in range(n)])
    return -lof < np.percentile(-lof, 100 * contamination)


@pytest.mark.parametrize("k, contamination", [(30, 0.05), (5, 0.1)])
def test_lof_variants_follow_their_formulas(k, contamination):
    x = points()
    official = lof_outliers(torch.from_numpy(x).float(), k, contamination, "official").numpy()
    np.testing.assert_array_equal(official, official_lof_mask(x, k, contamination))
    sk = lof_outliers(torch.from_numpy(x), k, contamination, "sklearn").numpy()
    np.testing.assert_array_equal(sk, textbook_lof_mask(x, k, contamination))
    for mask in (official, sk):  # the far points are among the flagged (5% of 40 points: 2, 10%: 4)
        assert mask.sum() == round(40 * contamination) and mask[:3].sum() >= 2
    with pytest.raises(ConfigError, match="lof_k"):
        lof_outliers(torch.from_numpy(x).float(), 40, contamination, "official")
    with pytest.raises(ConfigError, match="lof"):
        lof_outliers(torch.from_numpy(x).float(), k, contamination, "isolation-forest")


def test_outliers_become_the_mean_of_their_clean_neighbours():
    grid = torch.arange(2 * 4 * 5, dtype=torch.float64).reshape(1, 2, 4, 5) ** 1.5
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 0] = mask[0, 1] = mask[2, 3] = True
    out = repair_outliers(grid, mask)
    expected = grid.clone()
    for y, x in [(0, 0), (0, 1), (2, 3)]:
        nb = [(yy, xx) for yy in range(y - 1, y + 2) for xx in range(x - 1, x + 2)
              if (yy, xx) != (y, x) and 0 <= yy < 4 and 0 <= xx < 5 and not mask[yy, xx]]
        expected[0, :, y, x] = torch.stack([grid[0, :, yy, xx] for yy, xx in nb]).mean(0)
    torch.testing.assert_close(out, expected)
    lonely = torch.ones(4, 5, dtype=torch.bool)  # no clean neighbour: left as it is
    assert torch.equal(repair_outliers(grid, lonely), grid)


def test_aggregation_thresholds_and_row_normalises():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 6, 3, generator=g, dtype=torch.float64)
    s = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    expected = torch.zeros_like(x)
    for i in range(6):
        w = [float(s[0, i, j]) if s[0, i, j] >= 0.4 else 0.0 for j in range(6)]
        expected[0, i] = sum(w[j] * x[0, j] for j in range(6)) / (sum(w) + 1e-6)
    torch.testing.assert_close(aggregate(x, s, 0.4), expected)


@torch.no_grad()
def explicit_mixed_attention(x, attn, s):
    c = x.shape[-1]
    heads = attn.num_heads
    d = c // heads
    w, b = attn.in_proj_weight.double(), attn.in_proj_bias.double()
    k = (x[0].double() @ w[c:2 * c].T + b[c:2 * c]).numpy()
    v = (x[0].double() @ w[2 * c:].T + b[2 * c:]).numpy()
    sim = s[0].double().numpy()
    shifted = 3.0 * (sim - sim.mean())
    shifted[shifted < 0] = -np.inf
    p1 = np.exp(shifted - shifted.max(1, keepdims=True))
    p1 /= p1.sum(1, keepdims=True)
    out = np.zeros_like(v)
    for h in range(heads):
        kh, vh = k[:, h * d:(h + 1) * d], v[:, h * d:(h + 1) * d]
        logits = kh @ kh.T / math.sqrt(d)
        p2 = np.exp(logits - logits.max(1, keepdims=True))
        p2 /= p2.sum(1, keepdims=True)
        out[:, h * d:(h + 1) * d] = (p1 + p2) / 2 @ vh
    o = torch.from_numpy(out) @ attn.out_proj.weight.double().T + attn.out_proj.bias.double()
    return o[None]


@pytest.fixture(scope="module")
def clip16():
    return build_clip("tiny-vit-p16", "random", seed=5)[0]


@torch.no_grad()
def test_mixed_attention_is_the_half_sum_of_two_softmaxes(clip16):
    attn = clip16.visual.transformer.resblocks[-1].attn
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 10, attn.embed_dim, generator=g)
    f = F.normalize(torch.randn(1, 10, 8, generator=g), dim=-1)
    s = f @ f.transpose(1, 2)
    torch.testing.assert_close(mixed_attention(x, attn, s).double(), explicit_mixed_attention(x, attn, s),
                               atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_encoder_is_open_clip_blocks_then_the_formulas(clip16):
    """Blocks 1..L-1 by open_clip's own modules, positions by F.interpolate with scale_factor (g + 0.1) / n0, then
    steps 1-5 written out with the helpers above (3 blocks: pre = 2, post = 1, multi = 1..2)."""
    layers = SCCLIPLayers(pre=2, post=1, multi_start=1, multi_end=2)
    enc = SCCLIPEncoder(clip16, layers, res_cls=0.3, lof_k=30)
    x = torch.randn(1, 3, 96, 112, generator=torch.Generator().manual_seed(2))
    out = enc(x)
    v = clip16.visual
    gh, gw = 6, 7
    t = v.conv1(x).flatten(2).transpose(1, 2)
    n0 = v.grid_size[0]
    table = v.positional_embedding[1:].reshape(1, n0, n0, -1).permute(0, 3, 1, 2)
    pos = F.interpolate(table, scale_factor=((gh + 0.1) / n0, (gw + 0.1) / n0), mode="bicubic")
    pos = torch.cat([v.positional_embedding[:1], pos.permute(0, 2, 3, 1).reshape(gh * gw, -1)])
    t = v.ln_pre(torch.cat([v.class_embedding.view(1, 1, -1), t], 1) + pos)
    outs = []
    for block in v.transformer.resblocks[:-1]:
        t = block(t)
        outs.append(t)
    last = v.transformer.resblocks[-1]
    c = t.shape[-1]
    mask = torch.from_numpy(official_lof_mask(outs[1][0, 1:].double().numpy(), 30, 0.05)).reshape(gh, gw)
    patches = repair_outliers(outs[1][:, 1:].transpose(1, 2).reshape(1, c, gh, gw), mask).flatten(2).transpose(1, 2)
    pre = repair_outliers(outs[1][:, 1:].transpose(1, 2).reshape(1, c, gh, gw), mask).flatten(2).transpose(1, 2)
    pn = F.normalize(pre, dim=-1)
    mid = pn @ pn.transpose(1, 2)
    y = explicit_mixed_attention(last.ln_1(aggregate(patches, mid, 0.4)), last.attn, mid).float()
    y = y + 0.3 * outs[1][:, :1]
    qn = F.normalize(outs[0][:, 1:], dim=-1)
    after = qn @ qn.transpose(1, 2)
    y = aggregate(y, after, 0.4)
    m = outs[0] + outs[1]
    ym = explicit_mixed_attention(last.ln_1(m[:, 1:]), last.attn, mid).float() + 0.3 * m[:, :1]
    y = y + aggregate(ym, after, 0.4)
    f = F.normalize(v.ln_post(y) @ v.proj, dim=-1).transpose(1, 2).reshape(1, -1, gh, gw)
    assert out.shape == (1, v.proj.shape[1], gh, gw)
    torch.testing.assert_close(out, f, atol=2e-5, rtol=1e-4)


def test_layer_indices_defaults_and_errors(clip16):
    assert default_layers(12) == SCCLIPLayers(9, 4, 4, 10) and PUBLISHED_LAYERS[24].pre == 17
    with pytest.raises(ConfigError, match="pre_layer"):
        SCCLIPEncoder(clip16)  # 3 blocks: no published indices
    with pytest.raises(ConfigError, match="post_layer"):
        SCCLIPEncoder(clip16, SCCLIPLayers(pre=2, post=3, multi_start=1, multi_end=2))
    with pytest.raises(ConfigError, match="multi_start_layer"):
        SCCLIPEncoder(clip16, SCCLIPLayers(pre=2, post=1, multi_start=2, multi_end=1))
    with pytest.raises(ConfigError, match="res_cls"):
        SCCLIPEncoder(clip16, SCCLIPLayers(2, 1, 1, 2), res_cls=2.0)
