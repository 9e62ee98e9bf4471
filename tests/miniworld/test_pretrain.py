"""MiniWorld CLIP pretraining: the truncated text encoder is exact, the loss matches an independent computation,
batches are a pure function of (seed, step), the compact vocabulary changes nothing, training resumes exactly,
and the command writes a loadable < 5 MB checkpoint with a record that names its sha256."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from harness.data.miniworld.recipe import PretrainConfig
from methods.components.weights import build_clip
from methods.tools.miniworld import pretrain as pt


@pytest.fixture(scope="module")
def model():
    return build_clip(pt.ARCH, "random", seed=1)[0]


def _captions(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [pt.sample_scene(rng)[2] for _ in range(n)]


def test_truncated_text_encoder_is_exact(model):
    captions = _captions(6)
    ids = pt.tokenize(captions)
    with torch.no_grad():
        full = model.encode_text(ids)
        assert torch.allclose(pt.encode_text(model, ids), full, atol=1e-5)
        assert torch.allclose(pt.encode_text(model, pt.caption_tokens(captions), pt.TEXT_LENGTH), full, atol=1e-5)


def test_every_caption_fits_and_is_in_the_kept_vocabulary():
    kept = set(pt.kept_token_ids())
    ids = pt.caption_tokens(_captions(300, seed=4))
    assert ids.shape[1] == pt.TEXT_LENGTH
    assert set(ids.flatten().tolist()) - {0} <= kept
    assert len(kept) < 200  # the pruned table is tiny


def test_soft_targets_and_loss_against_numpy():
    targets = pt.soft_targets(["a", "b", "a"])
    assert torch.equal(targets, torch.tensor([[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]))
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=-1)
    scale = torch.tensor(np.log(10.0))
    loss = pt.contrastive_loss(img, txt, scale, targets)

    logits = 10.0 * img.numpy() @ txt.numpy().T
    t = targets.numpy()

    def soft_ce(z):
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -(t * logp).sum(axis=1).mean()

    assert float(loss) == pytest.approx(0.5 * (soft_ce(logits) + soft_ce(logits.T)), rel=1e-5)
    capped = pt.contrastive_loss(img, txt, torch.tensor(10.0), targets)  # exp(10) > 100: capped at 100
    assert float(capped) == pytest.approx(float(pt.contrastive_loss(img, txt, torch.tensor(np.log(100.0)),
                                                                    targets)), rel=1e-5)


def test_batches_are_a_pure_function_of_seed_and_step():
    a_img, a_cap = pt.scene_batch(0, 7, 4)
    b_img, b_cap = pt.scene_batch(0, 7, 4)
    c_img, c_cap = pt.scene_batch(0, 8, 4)
    assert torch.equal(a_img, b_img) and a_cap == b_cap
    assert not torch.equal(a_img, c_img)
    x = pt.normalise(a_img)
    assert x.shape == (4, 3, 64, 64)
    mean = torch.tensor(pt.CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(pt.CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(x * std + mean, a_img.permute(0, 3, 1, 2).float() / 255, atol=1e-6)


def test_compact_vocabulary_changes_nothing():
    full = build_clip(pt.ARCH, "random", seed=2)[0]
    compact_model = build_clip(pt.ARCH, "random", seed=2)[0]
    compact = pt.CompactVocabulary(compact_model, pt.kept_token_ids())
    assert compact_model.token_embedding.num_embeddings == len(pt.kept_token_ids())
    ids = pt.caption_tokens(_captions(5, seed=9))
    with torch.no_grad():
        expected = pt.encode_text(full, ids, pt.TEXT_LENGTH)
        assert torch.equal(pt.encode_text(compact_model, compact.remap(ids), pt.TEXT_LENGTH), expected)
        compact.restore(compact_model)
        assert torch.equal(pt.encode_text(compact_model, ids, pt.TEXT_LENGTH), expected)
    with pytest.raises(ValueError, match="kept vocabulary"):
        compact.remap(torch.tensor([[49406, 1234, 49407]]))


def test_resume_is_exact(tmp_path):
    cfg = PretrainConfig(steps=4, batch_size=4, warmup=1, compile=False, checkpoint_every=1)
    straight, _ = pt.pretrain(cfg, tmp_path / "a", progress=False)
    pt.pretrain(cfg, tmp_path / "b", progress=False, stop_after=2)
    resumed, summary = pt.pretrain(cfg, tmp_path / "b", progress=False)
    assert summary["resumed_from"] == 2 and summary["steps_done"] == 4
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_command_writes_checkpoint_and_record(tmp_path):
    from harness.__main__ import main

    out = tmp_path / "clip.pt"
    argv = ["miniworld", "pretrain", "--steps", "3", "--batch-size", "8", "--warmup", "1", "--out", str(out),
            "--work-dir", str(tmp_path / "work"), "--probe-images", "8", "--no-compile", "--no-progress"]
    assert main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["file"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.stat().st_size < 5e6 and record["file"]["bytes"] == out.stat().st_size
    assert record["recipe"]["steps"] == 3 and record["steps_done"] == 3 and len(record["loss"]["curve"]) >= 1
    assert np.isfinite(record["loss"]["last"]) and record["env"]["git_sha"]
    probe = record["probe"]
    assert probe["n_images"] == 8 and 0 <= probe["image_top1_present"] <= 1
    assert set(probe["dense"]) == {"vanilla", "gps-0.5", "gps-1.0", "drop-last"}
    model, info = build_clip(pt.ARCH, out)
    assert info.sha256 == record["file"]["sha256"]
    # a finished run re-run trains nothing more
    assert main(argv) == 0
    assert json.loads(out.with_suffix(".json").read_text())["resumed_from"] == 3
    # the probe command measures the file as it now is and names it
    import contextlib
    import io

    record = json.loads(out.with_suffix(".json").read_text())
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["miniworld", "probe", "--weights", str(out), "--images", "8"]) == 0
    probed = json.loads(buffer.getvalue())
    assert probed["weights"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() == record["file"]["sha256"]
    assert probed["dense"] == probe["dense"] and probed["image_top1_present"] == probe["image_top1_present"]
