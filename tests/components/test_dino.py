"""DINO through timm: random only when asked, local files loaded and recorded, a fast offline error, features."""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import save_file

from harness.errors import WeightsError
from methods.components.clip_trunk import CLIP_MEAN_255, CLIP_STD_255, IMAGENET_MEAN_255, IMAGENET_STD_255
from methods.components.dino import DinoFeatures, build_dino, dino_weights_problem


def test_random_only_when_asked_and_recorded():
    model, info = build_dino("tiny-dino-p8", "random", seed=1)
    assert info.source == "random" and info.seed == 1
    with pytest.raises(WeightsError, match="No weights given"):
        build_dino("tiny-dino-p8", None)
    with pytest.raises(WeightsError, match="Unknown DINO architecture"):
        build_dino("vit_small", "random")


def test_local_file_loads_the_same_weights(tmp_path):
    model, _ = build_dino("tiny-dino-p8", "random", seed=1)
    for fmt in ("safetensors", "pth"):
        path = tmp_path / f"dino.{fmt}"
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(path)) if fmt == "safetensors" else torch.save(state, path)
        loaded, info = build_dino("tiny-dino-p8", str(path), seed=7)  # another seed: weights come from the file
        assert info.source == "file" and len(info.sha256) == 64
        x = torch.randn(1, 3, 32, 40)
        torch.testing.assert_close(DinoFeatures(loaded)(x), DinoFeatures(model)(x))
    bad = tmp_path / "bad.safetensors"
    save_file({"nothing": torch.zeros(1)}, str(bad))
    with pytest.raises(WeightsError, match="Could not load"):
        build_dino("tiny-dino-p8", str(bad))


def test_offline_tag_fails_fast_and_says_how_to_get_the_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("methods.components.dino._cached_hub_file", lambda *arch: None)
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        build_dino("vit_base_patch8_224", "dino")
    assert time.perf_counter() - start < 1.0  # checked before the ViT-B/8 is built
    message = str(err.value)
    assert "huggingface.co/timm/vit_base_patch8_224.dino" in message and "dino_weights" in message
    start = time.perf_counter()
    assert "dino_weights" in dino_weights_problem("vit_base_patch8_224", "dino")
    assert time.perf_counter() - start < 1.0


def test_features_are_patch_tokens_after_imagenet_renormalisation():
    model, _ = build_dino("tiny-dino-p8", "random", seed=2)
    feats = DinoFeatures(model)
    raw = torch.rand(2, 3, 36, 50) * 255
    clip_norm = (raw - torch.tensor(CLIP_MEAN_255).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD_255).view(1, 3, 1, 1)
    net_norm = (raw - torch.tensor(IMAGENET_MEAN_255).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD_255).view(1, 3, 1, 1)
    out = feats(clip_norm)
    assert out.shape == (2, 32, 4, 6)  # 36 // 8, 50 // 8
    tokens = model.forward_features(net_norm[..., :32, :48])
    torch.testing.assert_close(out, tokens[:, 1:].transpose(1, 2).reshape(2, 32, 4, 6), atol=1e-4, rtol=1e-4)
