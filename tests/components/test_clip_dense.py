"""DenseCLIP pinned against open_clip's own forward and against explicit attention matrices (tiny random CLIPs)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from harness.errors import ConfigError
from methods.components.clip_dense import (
    GPS,
    MPS,
    CoverageIdentity,
    DenseCLIP,
    Vanilla,
)
from methods.components.weights import build_clip

ATOL = 2e-5


# ---------------------------------------------------------------------------------- independent reference code


def interp_table(table, src, dst):
    """CLS row + bicubic patch rows, written out independently of the module under test."""
    c = table.shape[1]
    grid = table[1:].T.reshape(1, c, src[0], src[1])
    grid = F.interpolate(grid, size=dst, mode="bicubic", align_corners=False)
    return torch.cat([table[:1], grid.reshape(c, -1).T])


def qkv(block, h):
    c = block.attn.embed_dim
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    return (h @ w[:c].T + b[:c], h @ w[c:2 * c].T + b[c:2 * c], h @ w[2 * c:].T + b[2 * c:])


def heads(t, n):
    return t.reshape(t.shape[0], t.shape[1], n, -1).permute(0, 2, 1, 3)


def softmax_attention_matrix(block, h):
    q, k, _ = qkv(block, h)
    n = block.attn.num_heads
    q, k = heads(q, n), heads(k, n)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # (B, H, T, T)


def apply_matrix(block, h, matrix):
    """out_proj(A V) for an explicit (B, H, T, T) or (B, 1, T, T) matrix A."""
    _, _, v = qkv(block, h)
    out = matrix @ heads(v, block.attn.num_heads)
    out = out.permute(0, 2, 1, 3).reshape(h.shape)
    return block.attn.out_proj(out)


def mask_rows(masks, grid):
    probs = F.interpolate(masks, size=grid, mode="bilinear", align_corners=False).sigmoid()
    probs = probs.flatten(2).transpose(1, 2)
    return torch.cat([torch.ones_like(probs[:, :1]), probs], dim=1)  # (B, T, N)


def reference_forward(model, x, *, input_prompt=None, layer_prompts=None, matrices=None, prompt_grid=(24, 24)):
    """The official recipe step by step with open_clip's modules; `matrices` maps block -> fn(block, h) -> A."""
    v = model.visual
    layer_prompts, matrices = layer_prompts or {}, matrices or {}
    grid = (x.shape[-2] // v.patch_size[0], x.shape[-1] // v.patch_size[1])
    t = v.conv1(x).flatten(2).transpose(1, 2)
    t = torch.cat([v.class_embedding.expand(t.shape[0], 1, -1), t], dim=1)
    t = t + interp_table(v.positional_embedding, v.grid_size, grid)
    if input_prompt is not None:
        t = t + interp_table(input_prompt, prompt_grid, grid)
    t = v.ln_pre(t)
    for i, block in enumerate(v.transformer.resblocks):
        if i in layer_prompts:
            t = t + interp_table(layer_prompts[i], prompt_grid, grid)
        if i in matrices:
            h = block.ln_1(t)
            t = t + apply_matrix(block, h, matrices[i](block, h))
            t = t + block.mlp(block.ln_2(t))
        else:
            t = block(t)
    f = F.normalize(v.ln_post(t) @ v.proj, dim=-1)
    return f[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, *grid), f[:, 0]


def open_clip_tokens(model, x, grid=None):
    """open_clip's own VisionTransformer forward (pos-embed swapped for the resampled one at other sizes)."""
    visual = copy.deepcopy(model.visual)
    visual.output_tokens = True
    if grid is not None and tuple(grid) != tuple(visual.grid_size):
        visual.positional_embedding = torch.nn.Parameter(
            interp_table(visual.positional_embedding.detach(), visual.grid_size, grid))
    pooled, tokens = visual(x)
    feats = F.normalize(tokens @ visual.proj, dim=-1)
    g = grid or visual.grid_size
    return feats.transpose(1, 2).reshape(x.shape[0], -1, *g), F.normalize(pooled, dim=-1)


class CountSDPA(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            self.calls += 1
        return func(*args, **(kwargs or {}))


# ---------------------------------------------------------------------------------- equality with open_clip


@pytest.mark.parametrize("rules", [{}, {0: Vanilla(), 1: Vanilla(), 2: Vanilla()}, {-1: GPS(0.0)}],
                         ids=["no-rules", "vanilla-all", "gps0-last"])
def test_vanilla_rules_equal_open_clip_encode_image(clip16, rules):
    x = torch.randn(2, 3, 64, 64)
    out = DenseCLIP(clip16, attention_rules=rules)(x, normalised=True)
    ref_patch, ref_cls = open_clip_tokens(clip16, x)
    assert out.grid == (4, 4)
    torch.testing.assert_close(out.patch_features, ref_patch, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.cls, ref_cls, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.cls, F.normalize(clip16.encode_image(x), dim=-1), atol=ATOL, rtol=0)


def test_any_input_size_uses_bicubic_resampled_positions(clip16):
    x = torch.randn(1, 3, 80, 48)
    out = DenseCLIP(clip16, attention_rules={-1: Vanilla()})(x, normalised=True)
    ref_patch, ref_cls = open_clip_tokens(clip16, x, grid=(5, 3))
    assert out.patch_features.shape == (1, 32, 5, 3)
    torch.testing.assert_close(out.patch_features, ref_patch, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.cls, ref_cls, atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------- attention rules


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_gps_equals_explicit_blend_of_identity_and_softmax(clip16, alpha):
    block = clip16.visual.transformer.resblocks[-1]
    h = torch.randn(2, 17, 64)
    eye = torch.eye(17)
    matrix = alpha * eye + (1 - alpha) * softmax_attention_matrix(block, h)
    torch.testing.assert_close(GPS(alpha).mix(h, block.attn, None), apply_matrix(block, h, matrix),
                               atol=ATOL, rtol=0)

    x = torch.randn(2, 3, 64, 64)
    out = DenseCLIP(clip16, attention_rules={-1: GPS(alpha)})(x, normalised=True)
    ref_patch, ref_cls = reference_forward(clip16, x, matrices={
        2: lambda b, hh: alpha * torch.eye(hh.shape[1]) + (1 - alpha) * softmax_attention_matrix(b, hh)})
    torch.testing.assert_close(out.patch_features, ref_patch, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.cls, ref_cls, atol=ATOL, rtol=0)


def test_gps_alpha_one_mixes_no_tokens_and_skips_attention(clip16):
    block = clip16.visual.transformer.resblocks[1]
    h = torch.randn(1, 17, 64)
    h2 = h.clone()
    h2[0, 5] += 1.0
    severed = GPS(1.0).mix(h2, block.attn, None) - GPS(1.0).mix(h, block.attn, None)
    changed = severed.abs().amax(dim=-1)[0] > 0
    assert changed.tolist() == [i == 5 for i in range(17)]
    mixed = Vanilla().mix(h2, block.attn, None) - Vanilla().mix(h, block.attn, None)
    assert (mixed.abs().amax(dim=-1)[0] > 1e-6).sum() > 1  # sanity: vanilla does mix

    with CountSDPA() as counter:
        GPS(1.0).mix(h, block.attn, None)
    assert counter.calls == 0
    with CountSDPA() as counter:
        GPS(0.5).mix(h, block.attn, None)
    assert counter.calls == 1

    # Severed everywhere: changing the pixels of one patch changes only that patch's feature.
    dense = DenseCLIP(clip16, attention_rules={i: GPS(1.0) for i in range(3)})
    x = torch.randn(1, 3, 64, 64)
    x2 = x.clone()
    x2[..., 16:32, 32:48] += 1.0  # patch (1, 2)
    diff = (dense(x2, normalised=True).patch_features - dense(x, normalised=True).patch_features).abs()
    moved = diff.amax(dim=1)[0] > 0
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[1, 2] = True
    assert torch.equal(moved, expected)


def test_mps_equals_explicit_mask_matrix(clip16):
    x = torch.randn(2, 3, 64, 64)
    masks = 3 * torch.randn(2, 7, 16, 16)
    out = DenseCLIP(clip16, attention_rules={-1: MPS()})(x, masks, normalised=True)

    m = mask_rows(masks, (4, 4))
    matrix = torch.softmax(m @ m.transpose(1, 2), dim=-1).unsqueeze(1)  # same for every head, no 1/sqrt(d)
    ref_patch, ref_cls = reference_forward(clip16, x, matrices={2: lambda b, hh: matrix})
    torch.testing.assert_close(out.patch_features, ref_patch, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.cls, ref_cls, atol=ATOL, rtol=0)


def test_coverage_identity_equals_explicit_diagonal(clip16):
    x = torch.randn(2, 3, 64, 64)
    masks = 3 * torch.randn(2, 5, 16, 16)
    out = DenseCLIP(clip16, attention_rules={2: CoverageIdentity()})(x, masks, normalised=True)

    coverage = mask_rows(masks, (4, 4)).sum(-1)  # (B, T); CLS row = N = 5
    assert torch.allclose(coverage[:, 0], torch.full((2,), 5.0))
    matrix = torch.diag_embed(coverage).unsqueeze(1)
    ref_patch, _ = reference_forward(clip16, x, matrices={2: lambda b, hh: matrix})
    torch.testing.assert_close(out.patch_features, ref_patch, atol=ATOL, rtol=0)


def test_rules_apply_to_any_layers_including_negative_indices(clip16):
    x = torch.randn(1, 3, 64, 64)
    masks = torch.randn(1, 4, 16, 16)
    out = DenseCLIP(clip16, attention_rules={-2: GPS(0.5), 0: MPS()})(x, masks, normalised=True)
    m = mask_rows(masks, (4, 4))
    ref, _ = reference_forward(clip16, x, matrices={
        0: lambda b, hh: torch.softmax(m @ m.transpose(1, 2), dim=-1).unsqueeze(1),
        1: lambda b, hh: 0.5 * torch.eye(hh.shape[1]) + 0.5 * softmax_attention_matrix(b, hh)})
    torch.testing.assert_close(out.patch_features, ref, atol=ATOL, rtol=0)


def test_invalid_rule_configurations_raise_config_errors(clip16):
    with pytest.raises(ConfigError, match="need proposal masks"):
        DenseCLIP(clip16, attention_rules={-1: MPS()})(torch.randn(1, 3, 64, 64), normalised=True)
    with pytest.raises(ConfigError, match="out of range"):
        DenseCLIP(clip16, attention_rules={3: GPS(1.0)})
    with pytest.raises(ConfigError, match="listed twice"):
        DenseCLIP(clip16, attention_rules={-1: GPS(1.0), 2: Vanilla()})
    with pytest.raises(ConfigError, match=r"alpha=1.5 must be <= 1"):
        GPS(1.5)
    with pytest.raises(ConfigError, match="AttnRule"):
        DenseCLIP(clip16, attention_rules={0: "gps"})


# ---------------------------------------------------------------------------------- visual prompts and training


def test_visual_prompts_are_resampled_and_added_as_specified(clip16):
    torch.manual_seed(0)
    dense = DenseCLIP(clip16, input_prompt=True, prompt_layers=(1, 2), attention_rules={-1: GPS(1.0)})
    x = torch.randn(1, 3, 80, 64)
    out = dense(x, normalised=True)
    ref, _ = reference_forward(
        clip16, x, input_prompt=dense.input_prompt.detach(),
        layer_prompts={1: dense.layer_prompts[0].detach(), 2: dense.layer_prompts[1].detach()},
        matrices={2: lambda b, hh: torch.eye(hh.shape[1])})
    torch.testing.assert_close(out.patch_features, ref, atol=ATOL, rtol=0)
    assert dense.input_prompt.shape == (1 + 24 * 24, 64)
    assert abs(dense.input_prompt.std().item() - 64 ** -0.5) < 0.02  # randn * width^-0.5

    zero = DenseCLIP(clip16, input_prompt=True, prompt_layers=(0, 1, 2), prompt_init="zeros")
    plain = DenseCLIP(clip16)
    torch.testing.assert_close(zero(x, normalised=True).patch_features, plain(x, normalised=True).patch_features,
                               atol=ATOL, rtol=0)


def test_gradients_reach_only_the_prompts(clip16):
    dense = DenseCLIP(clip16, input_prompt=True, prompt_layers=(1,), attention_rules={-1: CoverageIdentity()})
    dense.train()
    assert not dense.visual.training
    out = dense(torch.rand(1, 3, 64, 64) * 255, torch.randn(1, 3, 16, 16))
    (out.patch_features * torch.randn_like(out.patch_features)).sum().backward()
    assert dense.input_prompt.grad is not None and dense.input_prompt.grad.abs().sum() > 0
    assert dense.layer_prompts[0].grad is not None and dense.layer_prompts[0].grad.abs().sum() > 0
    frozen = list(dense.visual.parameters())
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    assert {n for n, p in dense.named_parameters() if p.requires_grad} == {"input_prompt", "layer_prompts.0"}


# ---------------------------------------------------------------------------------- sizes, caching, precision


def test_patch_14_remainder_pad_or_crop(clip14):
    x = torch.randn(1, 3, 60, 62)
    padded = DenseCLIP(clip14, remainder="pad")(x, normalised=True)
    assert padded.grid == (5, 5)
    explicit = DenseCLIP(clip14)(F.pad(x, (0, 8, 0, 10)), normalised=True)
    torch.testing.assert_close(padded.patch_features, explicit.patch_features, atol=ATOL, rtol=0)

    cropped = DenseCLIP(clip14, remainder="crop")(x, normalised=True)
    assert cropped.grid == (4, 4)
    ref, _ = reference_forward(clip14, x[..., :56, :56])
    torch.testing.assert_close(cropped.patch_features, ref, atol=ATOL, rtol=0)

    # Masks cover the image extent; they are extended (replicated) over the padding by the same fraction of
    # their size (10/60 of 15 rows -> 2, 8/62 of 16 columns -> 2) before going to the grid.
    masks = torch.randn(1, 3, 15, 16)
    rules = {0: MPS(), -1: CoverageIdentity()}
    out = DenseCLIP(clip14, attention_rules=rules)(x, masks, normalised=True)
    explicit = DenseCLIP(clip14, attention_rules=rules)(
        F.pad(x, (0, 8, 0, 10)), F.pad(masks, (0, 2, 0, 2), mode="replicate"), normalised=True)
    torch.testing.assert_close(out.patch_features, explicit.patch_features, atol=ATOL, rtol=0)


def test_position_cache_is_per_grid_and_never_stale(clip16):
    model = copy.deepcopy(clip16)
    dense = DenseCLIP(model)
    x = torch.randn(1, 3, 48, 80)
    first = dense(x, normalised=True).patch_features
    dense(x, normalised=True)
    assert len(dense._pos_cache) == 1
    dense(torch.randn(1, 3, 32, 32), normalised=True)
    assert len(dense._pos_cache) == 2

    state = model.state_dict()
    state["visual.positional_embedding"] = state["visual.positional_embedding"] * 2.0
    model.load_state_dict(state)
    changed = dense(x, normalised=True).patch_features
    ref, _ = reference_forward(model, x)
    torch.testing.assert_close(changed, ref, atol=ATOL, rtol=0)
    assert not torch.allclose(changed, first)

    # A table cached under inference_mode still serves a training forward (prompts get gradients).
    trained = DenseCLIP(model, input_prompt=True)
    with torch.inference_mode():
        trained(x, normalised=True)
    trained(x, normalised=True).patch_features.sum().backward()
    assert trained.input_prompt.grad is not None

    dense.to(torch.float64)
    out64 = dense(x.double(), normalised=True).patch_features
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, reference_forward(model.double(), x.double())[0], atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------------- input conventions


def test_input_normalisation_is_explicit(clip16):
    raw = torch.rand(1, 3, 64, 64) * 255
    imagenet = DenseCLIP(clip16, input_normalisation="imagenet")
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(imagenet.normalise(raw), (raw - mean) / std)
    torch.testing.assert_close(imagenet(raw).patch_features,
                               imagenet((raw - mean) / std, normalised=True).patch_features, atol=ATOL, rtol=0)
    clip_norm = DenseCLIP(clip16, input_normalisation="clip").normalise(raw)
    clip_mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    clip_std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    torch.testing.assert_close(clip_norm, (raw / 255 - clip_mean) / clip_std)
    with pytest.raises(ConfigError, match="input_normalisation"):
        DenseCLIP(clip16, input_normalisation="none")


def test_encode_crops_is_plain_clip_image_embedding(clip16):
    crops = torch.rand(3, 3, 64, 64) * 255
    dense = DenseCLIP(clip16, input_prompt=True, attention_rules={-1: GPS(1.0)})  # must not affect crops
    clip_mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    clip_std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    expected = F.normalize(clip16.encode_image((crops / 255 - clip_mean) / clip_std), dim=-1)
    torch.testing.assert_close(dense.encode_crops(crops), expected, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="native size"):
        dense.encode_crops(torch.rand(1, 3, 32, 32))


@pytest.mark.slow
def test_real_vit_b16_quickgelu_config_equals_open_clip():
    model, info = build_clip("ViT-B-16-quickgelu", "random")
    assert info.quick_gelu is True
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        out = DenseCLIP(model, attention_rules={-1: Vanilla()})(x, normalised=True)
        ref_patch, ref_cls = open_clip_tokens(model, x)
    assert out.patch_features.shape == (1, 512, 14, 14)
    torch.testing.assert_close(out.patch_features, ref_patch, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.cls, ref_cls, atol=1e-4, rtol=0)


def test_inference_mlp_computes_quickgelu_in_place_bit_for_bit():
    """run_mlp without autograd: QuickGELU on c_fc's output in place, the very numbers of open_clip's MLP; with
    autograd (training through CLIP: DeOP's prompts) open_clip's own module runs, and gradients flow."""
    from open_clip.transformer import QuickGELU, ResidualAttentionBlock

    from methods.components.attention_rules import run_mlp

    torch.manual_seed(0)
    for act in (QuickGELU, torch.nn.GELU):
        block = ResidualAttentionBlock(32, 4, act_layer=act)
        x = torch.randn(3, 17, 32) * 3
        with torch.no_grad():
            expected = block.mlp(x)
            assert torch.equal(run_mlp(block.mlp, x), expected)
        with torch.inference_mode():
            assert torch.equal(run_mlp(block.mlp, x), expected)
        x.requires_grad_(True)
        run_mlp(block.mlp, x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
