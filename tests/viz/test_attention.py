"""Attention maps of chosen patches (paper Figs. 5 and 8) against independent computations."""

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from methods.components.clip_dense import GPS, MPS, CoverageIdentity, Vanilla
from methods.tools.attention import attention_maps, self_attention_rows, severed_rows

from .conftest import TINY, build, scene


def test_rows_match_torch_multihead_attention_weights():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(64, 4, batch_first=True)
    x = torch.randn(7, 64)
    _, weights = attn(x[None], x[None], x[None], need_weights=True, average_attn_weights=True)
    rows = self_attention_rows(attn, x, [0, 3, 6])
    torch.testing.assert_close(rows, weights[0, [0, 3, 6]], atol=1e-6, rtol=1e-5)


def test_severed_rows_follow_each_rule():
    """Each rule's rows, written out by hand from the vanilla rows and the masks."""
    torch.manual_seed(1)
    attn = nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(5, 16)
    vanilla = self_attention_rows(attn, x, [1, 4])
    masks = torch.rand(5, 3)
    masks[0] = 1.0  # the CLS row
    tokens = [1, 4]
    eye = torch.eye(5)[tokens]
    torch.testing.assert_close(severed_rows(GPS(0.3), attn, x, tokens, None), 0.3 * eye + 0.7 * vanilla)
    coverage = masks.sum(-1)[tokens, None]
    torch.testing.assert_close(severed_rows(CoverageIdentity(), attn, x, tokens, masks), eye * coverage)
    m = masks.numpy().astype(np.float64)
    logits = m[tokens] @ m.T
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(severed_rows(MPS(), attn, x, tokens, masks).numpy(), expected, rtol=1e-5)
    torch.testing.assert_close(severed_rows(Vanilla(), attn, x, tokens, None), vanilla)
    assert severed_rows(None, attn, x, tokens, None) is None


def test_maps_of_a_method_without_severance_match_the_last_blocks_own_input(tmp_path):
    """The last block's input is read independently (a pre-hook on the block, which runs as open_clip's own
    module when it has no rule); its attention weights come from torch's MultiheadAttention."""
    fitted = build("baseline", TINY, tmp_path)
    segmenter = fitted.segmenter
    block = segmenter.dense.visual.transformer.resblocks[-1]
    seen = {}
    hook = block.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0]))
    image = scene(64, 96)  # short side 64 = test_short_side: a 4 x 6 grid of 16-pixel patches, no padding
    try:
        maps = attention_maps(segmenter, image, ["sky", "grass", "red disc"], patches=[(95, 63), (20, 5)])
    finally:
        hook.remove()
    x = seen["x"]
    x = x if x.shape[0] == 1 else x.transpose(0, 1)
    ln = block.ln_1(x)
    _, weights = block.attn(ln, ln, ln, need_weights=True, average_attn_weights=True)
    assert [p.cell for p in maps.patches] == [(3, 5), (0, 1)]
    for patch in maps.patches:
        token = 1 + patch.cell[0] * 6 + patch.cell[1]
        np.testing.assert_allclose(patch.vanilla.ravel(), weights[0, token, 1:].numpy(), atol=1e-6)
        assert patch.vanilla_cls == pytest.approx(float(weights[0, token, 0]), abs=1e-6)
        assert patch.severed is None  # baseline: CLIP's own attention in every block
        assert patch.heatmap.shape == (4, 6) and patch.mask.shape == (64, 96)
        assert 0.0 <= patch.mask.min() and patch.mask.max() <= 1.0
    assert maps.severance == "none" and maps.heatmap_kind.startswith("mask pooling")
    assert maps.cell_size == (16.0, 16.0)


def test_deop_maps_severance_heatmaps_and_automatic_patches(deop_tiny):
    segmenter = deop_tiny.segmenter
    image = scene(48, 80)  # resized to 64 x 107, padded to 64 x 128: the grid has cells outside the image
    names = ["sky", "grass", "red disc"]
    maps = attention_maps(segmenter, image, names, n_auto=3)
    assert maps.severance == "identity x mask coverage"  # the released DeOP rule of the last block
    assert maps.heatmap_kind == "CAL query heatmap"
    assert 1 <= len(maps.patches) <= 3
    assert len({p.class_index for p in maps.patches}) == len(maps.patches)  # one per predicted segment
    for patch in maps.patches:
        assert patch.vanilla.shape == (4, 7)  # ceil(107 / 16) columns cover the image
        assert patch.vanilla.sum() + patch.vanilla_cls <= 1.0 + 1e-5  # the padding cells hold the rest
        nonzero = np.argwhere(patch.severed > 0)
        assert nonzero.tolist() == [list(patch.cell)]  # each token sees only itself ...
        assert 0 < patch.severed[patch.cell] <= segmenter.maskformer.cfg.num_queries  # ... scaled by coverage
        assert (patch.heatmap >= 0).all() and patch.heatmap.sum() <= 1.0 + 1e-5  # softmax x mask
        assert patch.mask.shape == (48, 80)
        assert 0 <= patch.proposal < segmenter.maskformer.cfg.num_queries
        assert 0 <= patch.xy[0] < 80 and 0 <= patch.xy[1] < 48


def test_bad_requests_are_config_errors(deop_tiny):
    with pytest.raises(ConfigError, match="outside"):
        attention_maps(deop_tiny.segmenter, scene(32, 32), ["a", "b"], patches=[(32, 0)])

    class Crops:  # what a multi-pass segmenter looks like from here: no one-pass `classify`
        pass

    with pytest.raises(ConfigError, match="one-pass"):
        attention_maps(Crops(), scene(32, 32), ["a", "b"])
