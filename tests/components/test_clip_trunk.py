"""The one dense CLIP trunk (methods/components/clip_trunk.py): pinned against open_clip's own forward and against a
block written out here; DeOP's DenseCLIP, the training-free last block and SC-CLIP's encoder all run on it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from methods.components.attention_rules import GPS, QQ, Proxy
from methods.components.clip_dense import DenseCLIP
from methods.components.clip_trunk import BlockChange, CLIPTrunk
from methods.components.last_block import TrainingFreeCLIP
from methods.components.scclip import SCCLIPEncoder, SCCLIPLayers
from methods.components.weights import build_clip

ATOL = 2e-5


@pytest.fixture(scope="module")
def clip16():
    return build_clip("tiny-vit-p16", "random", seed=7)[0]


@torch.no_grad()
def test_an_unchanged_trunk_is_open_clips_encode_image(clip16):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # the native 4 x 4 grid
    out = CLIPTrunk(clip16).encode(x)
    assert out.grid == (4, 4) and out.patch_features.shape == (2, clip16.visual.proj.shape[1], 4, 4)
    torch.testing.assert_close(out.cls, F.normalize(clip16.encode_image(x), dim=-1), atol=ATOL, rtol=0)


@torch.no_grad()
def test_a_changed_block_follows_its_rule_residual_and_ffn(clip16):
    """Block 1 of 3 with ClearCLIP's q-q attention, residual kept, FFN dropped, written out with open_clip's modules;
    the blocks around it are open_clip's own."""
    x = torch.randn(1, 3, 48, 80, generator=torch.Generator().manual_seed(2))
    trunk = CLIPTrunk(clip16, blocks={1: BlockChange(QQ(), residual=True, ffn=False)}, pos_interp="size")
    v = clip16.visual
    tokens = trunk.embed(x, (3, 5))
    first, changed, last = v.transformer.resblocks
    t = first(tokens)
    h = changed.ln_1(t)
    c, heads = changed.attn.embed_dim, changed.attn.num_heads
    q = (h @ changed.attn.in_proj_weight[:c].T + changed.attn.in_proj_bias[:c]).view(1, -1, heads, c // heads)
    val = (h @ changed.attn.in_proj_weight[2 * c:].T + changed.attn.in_proj_bias[2 * c:]).view(1, -1, heads,
                                                                                                c // heads)
    q, val = q.transpose(1, 2), val.transpose(1, 2)
    a = torch.softmax(q @ q.transpose(-1, -2) * (c // heads) ** -0.5, -1)
    t = t + changed.attn.out_proj((a @ val).transpose(1, 2).reshape(1, -1, c))
    t = last(t)
    f = F.normalize(v.ln_post(t) @ v.proj, dim=-1)
    torch.testing.assert_close(trunk.encode(x).patch_features, f[:, 1:].transpose(1, 2).reshape(1, -1, 3, 5),
                               atol=ATOL, rtol=1e-4)


def test_the_families_are_the_one_trunk_with_what_they_pass_in(clip16):
    dense = DenseCLIP(clip16, attention_rules={-1: GPS(1.0)})
    last = TrainingFreeCLIP(clip16, QQ(), "drop", "drop")
    scclip = SCCLIPEncoder(clip16, SCCLIPLayers(2, 1, 1, 2))
    assert all(isinstance(m, CLIPTrunk) for m in (dense, last, scclip))
    assert dense.block_changes == {2: BlockChange(GPS(1.0))}
    assert last.block_changes == {2: BlockChange(QQ(), residual=False, ffn=False)}
    assert scclip.block_changes == {} and scclip.remainder == "crop"


def test_block_changes_are_checked(clip16):
    with pytest.raises(ConfigError, match="needs residual: drop"):
        BlockChange(Proxy())
    with pytest.raises(ConfigError, match="only the last block"):
        CLIPTrunk(clip16, blocks={0: BlockChange(Proxy(), residual=False)})
    with pytest.raises(ConfigError, match="out of range"):
        CLIPTrunk(clip16, blocks={3: BlockChange(QQ())})
    with pytest.raises(ConfigError, match="AttnRule instances"):
        BlockChange("qq")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pos_interp"):
        CLIPTrunk(clip16, pos_interp="area")
