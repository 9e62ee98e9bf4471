"""Pruned-vocabulary CLIP checkpoints load through `build_clip` like any checkpoint: kept rows in place, zeros
elsewhere, every other tensor untouched, the file's sha256 recorded, and malformed row lists refused."""

from __future__ import annotations

import hashlib

import pytest
import torch

from harness.errors import WeightsError
from methods.components.weights import (
    TOKEN_ROWS_KEY,
    build_clip,
    expand_token_embedding,
    prune_token_embedding,
)

ARCH = "miniworld-vit-p8"


@pytest.fixture(scope="module")
def model():
    return build_clip(ARCH, "random", seed=3)[0]


def test_arch_is_the_issue_config(model):
    assert len(model.visual.transformer.resblocks) == 4 and model.visual.conv1.out_channels == 128
    assert tuple(model.visual.patch_size) == (8, 8) and tuple(model.visual.image_size) == (64, 64)
    assert len(model.transformer.resblocks) == 3 and model.token_embedding.num_embeddings == 49408
    assert model.positional_embedding.shape == (77, 128) and model.text_projection.shape == (128, 128)


def test_pruned_file_round_trip(model, tmp_path):
    import open_clip

    texts = ["a photo of a red disc.", "a photo of grass and sand."]
    ids = open_clip.tokenize(texts)
    keep = sorted(set(ids.flatten().tolist()) - {0})
    path = tmp_path / "clip.pt"
    torch.save(prune_token_embedding(model.state_dict(), keep), path)

    loaded, info = build_clip(ARCH, path)
    assert info.source == "file" and info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    original, restored = model.state_dict(), loaded.state_dict()
    for key, value in original.items():
        if key != "token_embedding.weight":
            assert torch.equal(value, restored[key]), key
    table = restored["token_embedding.weight"]
    assert torch.equal(table[keep], original["token_embedding.weight"][keep])
    others = torch.ones(table.shape[0], dtype=torch.bool)
    others[keep] = False
    assert int(others.sum()) == 49408 - len(keep) and not table[others].any()
    with torch.no_grad():  # texts within the kept vocabulary encode exactly as before
        assert torch.equal(loaded.encode_text(ids), model.encode_text(ids))


def test_fp16_storage_loads_into_fp32(model, tmp_path):
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path / "clip16.pt"
    torch.save(prune_token_embedding(state, [5, 49406, 49407]), path)
    loaded, _ = build_clip(ARCH, path)
    w = loaded.visual.conv1.weight
    assert w.dtype == torch.float32 and torch.equal(w, model.visual.conv1.weight.half().float())


@pytest.mark.parametrize("rows", [[1, 1, 2], [0, 49408, 3], [-1, 2, 3]])
def test_bad_row_ids_are_a_weights_error(model, tmp_path, rows):
    checkpoint = prune_token_embedding(model.state_dict(), [1, 2, 3])
    checkpoint[TOKEN_ROWS_KEY] = torch.tensor(rows)
    path = tmp_path / "bad.pt"
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="token embedding"):
        build_clip(ARCH, path)


def test_expand_places_rows():
    checkpoint = {"state_dict": {"token_embedding.weight": torch.tensor([[1.0, 2.0], [3.0, 4.0]])},
                  TOKEN_ROWS_KEY: torch.tensor([4, 1])}
    full = expand_token_embedding(checkpoint, 6)["token_embedding.weight"]
    expected = torch.zeros(6, 2)
    expected[4], expected[1] = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    assert torch.equal(full, expected)
