"""Each last-block rule against an explicit-matrix computation written here, at two input sizes (tiny random CLIP)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components.attention_rules import (
    ATTENTION_RULES,
    GPS,
    QQ,
    QQKK,
    KKGauss,
    Proxy,
    Vanilla,
    apply_attention,
    gaussian_bias,
)
from methods.components.clip_dense import DenseCLIP
from methods.components.last_block import ATTENTIONS, TrainingFreeCLIP, make_rule
from methods.components.weights import build_clip
from methods.spec import MethodSpec

ATOL = 3e-5
SIZES = [(64, 64), (48, 80)]  # grids 4x4 and 3x5 of tiny-vit-p16


@pytest.fixture(scope="module")
def clip16():
    return build_clip("tiny-vit-p16", "random", seed=3)[0]


def images(size, seed=0):
    return torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(seed))


def gauss_by_hand(gh, gw, sigma):
    n = gh * gw
    g = torch.zeros(1 + n, 1 + n)
    for i in range(n):
        for j in range(n):
            (yi, xi), (yj, xj) = divmod(i, gw), divmod(j, gw)
            g[1 + i, 1 + j] = math.exp(-((yi - yj) ** 2 + (xi - xj) ** 2) / (2 * sigma ** 2))
    return g


def explicit(model, x, name, residual, ffn, proxy=None, sigma=5.0, beta=1.2, gamma=3.0):
    """The last block written out with explicit matrices."""
    tokens, (gh, gw) = model.tokens_before_last(x)
    block = model.visual.transformer.resblocks[-1]
    attn = block.attn
    heads, c = attn.num_heads, attn.embed_dim
    d = c // heads
    h = block.ln_1(tokens)
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q, k, v = (h @ w[i * c:(i + 1) * c].T + b[i * c:(i + 1) * c] for i in range(3))
    q, k, v = (t.view(t.shape[0], -1, heads, d).transpose(1, 2) for t in (q, k, v))
    s = d ** -0.5
    if name == "qk":
        a = torch.softmax(s * q @ k.transpose(-1, -2), -1)
    elif name == "identity":
        a = torch.eye(q.shape[2]).expand(q.shape[0], heads, -1, -1)
    elif name == "qq+kk":
        a = torch.softmax(s * q @ q.transpose(-1, -2), -1) + torch.softmax(s * k @ k.transpose(-1, -2), -1)
    elif name == "qq":
        a = torch.softmax(s * q @ q.transpose(-1, -2), -1)
    elif name == "kk+gauss":
        a = torch.softmax(s * k @ k.transpose(-1, -2) + gauss_by_hand(gh, gw, sigma), -1)
    if name == "proxy":
        ph, pw = proxy.shape[-2:]
        f = proxy.flatten(2)
        f = f / f.norm(dim=1, keepdim=True)
        sim = f.transpose(1, 2) @ f
        sim = gamma * (sim - beta * sim.mean(dim=(1, 2), keepdim=True))
        sim[sim < 0] = float("-inf")
        a = torch.softmax(sim, -1).unsqueeze(1)
        vp = v[:, :, 1:].reshape(-1, gh, gw, d).permute(0, 3, 1, 2)
        v = F.interpolate(vp, size=(ph, pw), mode="bilinear", align_corners=False)
        v = v.permute(0, 2, 3, 1).reshape(q.shape[0], heads, ph * pw, d)
    mixed = (a @ v).transpose(1, 2).reshape(q.shape[0], -1, c)
    out = mixed @ attn.out_proj.weight.T + attn.out_proj.bias
    y = tokens + out if residual == "keep" else out
    if ffn == "keep":
        y = y + block.mlp(block.ln_2(y))
    feats = F.normalize(model.visual.ln_post(y) @ model.visual.proj, dim=-1)
    grid = (gh, gw) if name != "proxy" else tuple(proxy.shape[-2:])
    patches = feats[:, 1:] if name != "proxy" else feats
    return patches.transpose(1, 2).reshape(feats.shape[0], -1, *grid)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name,residual,ffn", [
    ("qk", "keep", "keep"), ("identity", "keep", "keep"), ("qq+kk", "keep", "keep"), ("qq", "drop", "drop"),
    ("kk+gauss", "drop", "drop"), ("qq", "keep", "drop"), ("qk", "drop", "keep"), ("kk+gauss", "keep", "keep")])
def test_rules_match_explicit_matrices(clip16, size, name, residual, ffn):
    model = TrainingFreeCLIP(clip16, make_rule(name), residual, ffn)
    x = images(size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), explicit(model, x, name, residual, ffn), atol=ATOL, rtol=1e-4)
        # the table's explicit per-head matrix, applied the slow way, equals the rule's fused mix (first image)
        block = model.visual.transformer.resblocks[-1]
        h = block.ln_1(model.tokens_before_last(x)[0])[0]
        context = {k: model.grid_for(*size) for k in model.rule.context}
        explicit_out = apply_attention(block.attn, h, model.rule.attention(h, block.attn, None, **context))
        torch.testing.assert_close(model.rule.mix(h[None], block.attn, None, **context)[0], explicit_out,
                                   atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("size", SIZES)
def test_proxy_matches_explicit_matrix(clip16, size):
    model = TrainingFreeCLIP(clip16, Proxy(beta=1.2, gamma=3.0), "drop", "drop")
    x = images(size, seed=1)
    proxy = torch.randn(2, 8, 5, 6, generator=torch.Generator().manual_seed(2)) + 0.5
    with torch.no_grad():
        out = model(x, proxy)
        assert out.shape == (2, 32, 5, 6)  # patch features on the proxy's grid
        torch.testing.assert_close(out, explicit(model, x, "proxy", "drop", "drop", proxy), atol=ATOL, rtol=1e-4)


def test_proxy_needs_residual_drop(clip16):
    with pytest.raises(ConfigError, match="residual: drop"):
        TrainingFreeCLIP(clip16, Proxy(), "keep", "drop")


@pytest.mark.parametrize("size", SIZES)
def test_identity_keep_equals_gps_alpha_1_of_the_one_pass_pipeline(clip16, size):
    x = images(size, seed=4) * 60 + 120  # raw-ish pixels, normalised by both with CLIP statistics
    ours = TrainingFreeCLIP(clip16, make_rule("identity"), "keep", "keep")
    gps = DenseCLIP(clip16, attention_rules={-1: GPS(1.0)}, input_normalisation="clip")
    plain = DenseCLIP(clip16, input_normalisation="clip")
    with torch.no_grad():
        torch.testing.assert_close(ours(ours.normalise(x)), gps(x).patch_features, atol=ATOL, rtol=1e-4)
        vanilla = TrainingFreeCLIP(clip16, make_rule("qk"), "keep", "keep")
        torch.testing.assert_close(vanilla(vanilla.normalise(x)), plain(x).patch_features, atol=ATOL, rtol=1e-4)


def test_gaussian_bias_by_hand():
    g = gaussian_bias((2, 3), sigma=1.0)
    assert g.shape == (7, 7)
    assert g[0].abs().sum() == 0 and g[:, 0].abs().sum() == 0  # CLS row and column
    assert g[1, 1].item() == pytest.approx(1.0)  # peak 1, not normalised
    assert g[1, 6].item() == pytest.approx(math.exp(-5 / 2))  # (0,0) to (1,2): distance^2 = 5
    torch.testing.assert_close(g, gauss_by_hand(2, 3, 1.0))


def test_rules_are_entries_of_the_attention_rule_table():
    assert ATTENTIONS == ("qk", "identity", "qq+kk", "qq", "kk+gauss", "proxy")
    assert make_rule("identity") == GPS(1.0) and make_rule("qk") == Vanilla()  # reused, not re-implemented
    for name, cls in (("qq+kk", QQKK), ("qq", QQ), ("kk+gauss", KKGauss), ("proxy", Proxy)):
        assert ATTENTION_RULES[name] is cls and cls.description
    assert make_rule("kk+gauss", sigma=2.0) == KKGauss(2.0)
    # grid-free rules are also one-pass `ps` options; NACLIP's and ProxyCLIP's need the dense pipeline's context
    assert MethodSpec(ps="qq").ps == "qq"
    for name in ("kk+gauss", "proxy"):
        with pytest.raises(ConfigError, match=re.escape(f"ps={name!r} is not one of")):
            MethodSpec(ps=name)
    with pytest.raises(ConfigError, match="needs the patch grid"):
        KKGauss().mix(torch.zeros(1, 5, 64), torch.nn.MultiheadAttention(64, 2), None)
    with pytest.raises(ConfigError, match="attention=.kq. is not a registered attention part"):
        make_rule("kq")
    with pytest.raises(ConfigError, match="sigma"):
        KKGauss(sigma=0)
    with pytest.raises(ConfigError, match="ffn"):
        TrainingFreeCLIP(build_clip("tiny-vit-p16", "random")[0], Vanilla(), "keep", "maybe")
