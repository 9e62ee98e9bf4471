"""Talk2DINO's parts (methods/components/talk2dino.py) against formulas written here from lorebianchi98/Talk2DINO
@4918c2d (ProjectionLayer.project_clip_txt, build_text_embedding, process_self_attention,
similarity_assignment_weighted, dinotext_seg's bg_thresh), on small tensors and a tiny timm DINOv2-with-registers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, WeightsError
from methods.components.queries import DECISIONS
from methods.components.talk2dino import (
    DinoV2Patches,
    ProjectionMLP,
    background_clean,
    build_dinov2,
    load_projection,
    projection_problem,
    similarity_scores,
    text_embeddings,
)


def test_projection_is_linear_tanh_linear_and_loads_the_official_keys(tmp_path):
    g = torch.Generator().manual_seed(0)
    w1, b1 = torch.randn(6, 4, generator=g), torch.randn(6, generator=g)
    w2, b2 = torch.randn(6, 6, generator=g), torch.randn(6, generator=g)
    f = tmp_path / "vitb_mlp_infonce.pth"
    torch.save({"linear_layer.weight": w1, "linear_layer.bias": b1, "linear_layer2.weight": w2,
                "linear_layer2.bias": b2}, f)  # the older key name the official loader maps
    mlp, info = load_projection(str(f), clip_dim=4, dino_dim=6)
    x = torch.randn(3, 4, generator=g)
    torch.testing.assert_close(mlp(x), torch.tanh(x @ w1.T + b1) @ w2.T + b2)
    assert info.source == "file" and info.sha256
    assert not any(p.requires_grad for p in mlp.parameters())


def test_missing_projection_fails_fast_naming_the_file(tmp_path):
    missing = str(tmp_path / "nowhere.pth")
    assert "vitb_mlp_infonce.pth" in projection_problem(missing) and missing in projection_problem(missing)
    with pytest.raises(WeightsError, match="vitb_mlp_infonce.pth"):
        load_projection(missing)
    assert projection_problem("random") is None and load_projection("random")[1].source == "random"


def test_offline_dinov2_names_the_hub_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("methods.components.talk2dino.hub_offline", lambda: True)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(WeightsError, match="vit_base_patch14_reg4_dinov2.lvd142m/resolve/main/model.safetensors"):
        build_dinov2()
    with pytest.raises(ConfigError, match="dinov2_arch"):
        build_dinov2("vit_small_patch14_dinov2", "random")


def test_text_side_averages_raw_embeddings_then_projects_and_normalises():
    table = {}

    def encode(prompts):
        for p in prompts:
            table.setdefault(p, torch.randn(4, generator=torch.Generator().manual_seed(len(table))) * (1 + len(table)))
        return torch.stack([table[p] for p in prompts])

    mlp = ProjectionMLP(4, 6)
    out = text_embeddings(encode, mlp, ["cat", "dog"], ("a {}.", "the {}!"))
    raw = (table["a dog."] + table["the dog!"]) / 2  # unnormalised mean, as build_text_embedding
    expected = mlp(raw[None])[0]
    torch.testing.assert_close(out[1], expected / expected.norm())


@pytest.fixture(scope="module")
def tiny_dinov2():
    return build_dinov2("tiny-dinov2-reg-p14", "random", seed=1)[0]


@torch.no_grad()
def test_patches_and_cls_attention_logits_of_the_last_block(tiny_dinov2):
    wrapper = DinoV2Patches(tiny_dinov2)
    x = torch.randn(1, 3, 42, 56, generator=torch.Generator().manual_seed(2))
    patches, maps = wrapper(x)
    m = tiny_dinov2
    assert m.num_prefix_tokens == 5  # CLS + 4 registers
    tokens = m.norm_pre(m._pos_embed(m.patch_embed(x)))
    for block in m.blocks[:-1]:
        tokens = block(tokens)
    last = m.blocks[-1]
    qkv = last.attn.qkv(last.norm1(tokens))  # (1, 5 + 12, 3C)
    c, heads = m.embed_dim, last.attn.num_heads
    d = c // heads
    q, k = qkv[0, :, :c], qkv[0, :, c:2 * c]
    for h in range(heads):
        logits = (q[0, h * d:(h + 1) * d] * 0.125) @ k[5:, h * d:(h + 1) * d].T
        torch.testing.assert_close(maps[0, h], logits, atol=1e-5, rtol=1e-5)
    final = m.forward_features(x)
    torch.testing.assert_close(patches[0].reshape(c, -1).T, final[0, 5:])
    assert patches.shape == (1, c, 3, 4)


def test_background_clean_follows_the_official_formula():
    g = torch.Generator().manual_seed(3)
    k, c, m, h, w = 3, 5, 2, 2, 3
    patches = torch.randn(1, c, h, w, generator=g, dtype=torch.float64)
    text = torch.nn.functional.normalize(torch.randn(k, c, generator=g, dtype=torch.float64), dim=-1)
    logits = torch.randn(1, m, h * w, generator=g, dtype=torch.float64)
    scores = similarity_scores(patches, text)
    out = background_clean(scores, patches, logits, text, 0.2).numpy()
    # written out with numpy, index by index
    a, f, t, s = logits[0].numpy(), patches[0].reshape(c, -1).numpy(), text.numpy(), scores[0].reshape(k, -1).numpy()
    head = np.stack([(a[i][None] * f).mean(-1) for i in range(m)])
    head /= np.linalg.norm(head, axis=1, keepdims=True)
    ht = np.exp(t @ head.T)
    ht /= ht.sum(1, keepdims=True)
    per = np.stack([sum(ht[j, i] * a[i] for i in range(m)) / ht[j].sum() for j in range(k)])
    per = np.exp(per - per.max(1, keepdims=True))
    per /= per.sum(1, keepdims=True)
    lo, hi = per.min(), per.max()
    per = (per - lo) / max(hi, hi - lo) * (s.max() - s.min()) + s.min()
    np.testing.assert_allclose(out.reshape(k, -1), (s + 0.2 * per) / 1.2, atol=1e-12)
    cos = np.einsum("chw,kc->khw", patches[0].numpy() / np.linalg.norm(patches[0].numpy(), axis=0), t)
    np.testing.assert_allclose(scores[0].numpy(), 1 / (1 + np.exp(-cos)), atol=1e-12)


def test_bg_thresh_is_a_registered_decision_with_a_constant_background_channel():
    decision = DECISIONS["bg-thresh"](bg_thresh=0.55)
    scores = torch.tensor([[[0.6, 0.5]], [[0.52, 0.7]]])
    out = decision.scores(scores, 3, 0)  # background first (VOC-21)
    assert out.argmax(0).tolist() == [[1, 2]] and torch.equal(out[0], torch.full((1, 2), 0.55))
    assert torch.equal(out[1:], scores)
    assert decision.scores(torch.full((2, 1, 1), 0.5), 3, 0).argmax(0).item() == 0
    mid = decision.scores(scores, 3, 1)  # a background in the middle keeps the class order around it
    assert torch.equal(mid[0], scores[0]) and torch.equal(mid[2], scores[1]) and (mid[1] == 0.55).all()
    assert torch.equal(decision.scores(scores, 2, None), scores)  # no background class: the scores as they are
    with pytest.raises(ConfigError, match="bg_thresh"):
        DECISIONS["bg-thresh"](bg_thresh=1.5)
    with pytest.raises(ValueError, match="2 foreground score maps for 2 classes"):
        decision.scores(scores, 2, 0)
