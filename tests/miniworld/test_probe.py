"""The probe measures what it says: patch classification by a hand-written ViT forward (last block kept or
dropped), patches painted onto their pixels, pAcc and d2-v0.6 mIoU computed with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods.components.weights import build_clip
from methods.tools.miniworld import probe as pr
from methods.tools.miniworld.pretrain import normalise


@pytest.fixture(scope="module")
def setup():
    model = build_clip("miniworld-vit-p8", "random", seed=5)[0]
    images, labels, captions = pr.eval_scenes(4, seed=3)
    return model, images, labels


def _patch_classes(model, images, drop_last: bool) -> np.ndarray:
    v = model.visual
    with torch.no_grad():
        x = v.conv1(normalise(images)).flatten(2).transpose(1, 2)
        x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
        x = v.ln_pre(x)
        blocks = list(v.transformer.resblocks)
        for block in blocks[:-1] if drop_last else blocks:
            x = block(x)
        feats = F.normalize(v.ln_post(x[:, 1:]) @ v.proj, dim=-1)
        scores = feats @ pr.class_text_features(model).T
    return scores.argmax(-1).view(-1, 8, 8).numpy()


def _metrics(pred: np.ndarray, gt: np.ndarray, k: int = 20) -> dict[str, float]:
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (gt.ravel(), pred.ravel()), 1)
    tp, gt_n, pred_n = np.diag(m), m.sum(1), m.sum(0)
    counted = gt_n + pred_n > 0
    iou = tp[counted] / (gt_n + pred_n - tp)[counted]
    return {"pacc": round(100 * tp.sum() / gt_n.sum(), 2), "miou": round(100 * iou.mean(), 2)}


@pytest.mark.parametrize("rule,drop", [("vanilla", False), ("drop-last", True)])
def test_dense_metrics_match_a_hand_computation(setup, rule, drop):
    model, images, labels = setup
    patches = _patch_classes(model, images, drop)
    pixels = np.kron(patches, np.ones((8, 8), np.int64))
    assert pr.dense_patch_metrics(model, images, labels, rule, batch_size=3) == _metrics(pixels, labels)


def test_gps_alpha_one_is_value_only_attention(setup):
    # alpha = 1 in the last block keeps only each token's own value vector (paper Eq. 2)
    model, images, labels = setup
    with torch.no_grad():
        dense = pr._dense_model(model, "gps-1.0")
        out = dense(images.permute(0, 3, 1, 2).float()).patch_features
        v = model.visual
        x = v.conv1(normalise(images)).flatten(2).transpose(1, 2)
        x = v.ln_pre(torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding)
        for block in v.transformer.resblocks[:-1]:
            x = block(x)
        last = v.transformer.resblocks[-1]
        attn = last.attn
        value = F.linear(last.ln_1(x), attn.in_proj_weight[256:], attn.in_proj_bias[256:])
        x = x + attn.out_proj(value)
        x = x + last.mlp(last.ln_2(x))
        expected = F.normalize(v.ln_post(x[:, 1:]) @ v.proj, dim=-1).transpose(1, 2).reshape(out.shape)
    assert torch.allclose(out, expected, atol=1e-5)


def test_image_level_accuracy_counts_visible_top_classes(setup):
    model, images, labels = setup
    with torch.no_grad():
        feats = F.normalize(model.encode_image(normalise(images)), dim=-1)
        top = (feats @ pr.class_text_features(model).T).argmax(1).tolist()
    expected = np.mean([np.sum(lab == t) >= 16 for t, lab in zip(top, labels)])
    assert pr.image_level_accuracy(model, images, labels) == pytest.approx(expected)
