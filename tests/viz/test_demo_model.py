"""Trained stages from a record: what the record names is what gets loaded, and mismatches are refused."""

import json

import pytest
import torch

from harness.errors import ConfigError, WeightsError
from harness.registries import METHODS
from harness.results import new_record, write_record
from harness.train.checkpoint import trainable_state
from methods.tools.demo_model import load_demo_model

from .conftest import TINY


def _stage(cache, stage, digest, state):
    directory = cache / stage / digest
    directory.mkdir(parents=True)
    torch.save(state, directory / "final.pt")
    (directory / "done.json").write_text(json.dumps({"stage": stage, "hash": digest}))


@pytest.fixture
def trained(deop_tiny, tmp_path):
    """A cache with recognisable stage tensors and the record of the cell that 'trained' them."""
    segmenter = deop_tiny.segmenter
    cache = tmp_path / "cache"
    ctx = torch.full_like(segmenter.text.ctx, 0.125)
    proposals = {k: v.clone() for k, v in segmenter.maskformer.state_dict().items()}
    first = next(k for k, v in proposals.items() if v.is_floating_point())
    proposals[first] += 1.0
    head = trainable_state(segmenter)
    head["void_embedding"] = torch.ones_like(head["void_embedding"])
    assert "text.ctx" in head  # DeOP fine-tunes the stage-1 context online: stage 3 stores it again
    head["text.ctx"] = 2 * ctx
    hashes = {"prompts": "p1", "proposals": "q1", "head": "h1"}
    _stage(cache, "prompts", "p1", {"ctx": ctx})
    _stage(cache, "proposals", "q1", proposals)
    _stage(cache, "head", "h1", head)
    record = new_record(suite="t", method="deop", benchmark="b", dataset="synthetic_coco", profile="smoke",
                        method_spec={"plugin": "deop", **METHODS.get("deop").resolve(TINY), "stage_hashes": hashes},
                        weights={"clip": deop_tiny.weights["clip"], "stages": hashes},
                        extra={"train_dataset": "synthetic_coco"})
    path = write_record(tmp_path / "record.json", record)
    return {"cache": cache, "record": path, "ctx": ctx, "proposals": proposals, "first": first}


def test_stages_named_by_the_record_are_loaded(trained):
    model = load_demo_model(method=None, options={"test_short_side": 48}, weights=None,
                            stages_from=trained["record"], cache_dir=trained["cache"], log=lambda *a: None)
    segmenter = model.segmenter
    assert model.method == "deop" and model.spec.test_short_side == 48  # inference options may change
    assert torch.equal(segmenter.text.ctx, 2 * trained["ctx"])  # stage 3's context, loaded after stage 1's
    assert torch.equal(segmenter.maskformer.state_dict()[trained["first"]], trained["proposals"][trained["first"]])
    assert torch.equal(segmenter.void_embedding, torch.ones_like(segmenter.void_embedding))
    assert model.weights["stages"] == {"prompts": "p1", "proposals": "q1", "head": "h1"}
    # trained on random CLIP and synthetic data: honest, but still meaningless for real photos
    assert len(model.meaningless) == 2 and "synthetic" in model.meaningless[1]


def test_untrained_default_says_why_it_is_meaningless(tmp_path):
    model = load_demo_model(method="baseline", options=TINY, weights=None, stages_from=None, cache_dir=tmp_path)
    assert model.source == "untrained" and model.weights["clip"]["source"] == "random"
    assert [m.split(" ")[0] for m in model.meaningless] == ["CLIP", "the"]


def test_mismatches_are_refused(trained):
    kwargs = {"weights": None, "stages_from": trained["record"], "cache_dir": trained["cache"]}
    with pytest.raises(ConfigError, match="only inference options"):
        load_demo_model(method=None, options={"cal": "conv"}, **kwargs)
    with pytest.raises(ConfigError, match="disagrees with the record"):
        load_demo_model(method="baseline", options={}, **kwargs)
    with pytest.raises(WeightsError, match="openai"):  # explicit weights that are not here: no silent fallback
        load_demo_model(method=None, options={}, **{**kwargs, "weights": "openai"})
    (trained["cache"] / "head" / "h1" / "done.json").unlink()  # an interrupted stage
    with pytest.raises(WeightsError, match="stage head .* is not in the cache"):
        load_demo_model(method=None, options={}, **kwargs)


def test_a_speed_record_has_no_trained_stages(tmp_path):
    record = new_record(suite="t", method="deop", benchmark="s", dataset=None, profile="smoke",
                        method_spec={"plugin": "deop", "stage_hashes": "random (untrained: timing only)"})
    path = write_record(tmp_path / "speed.json", record)
    with pytest.raises(ConfigError, match="speed cells never train"):
        load_demo_model(method=None, options={}, weights=None, stages_from=path, cache_dir=tmp_path)


def test_a_method_without_stage_3_keeps_the_stage_1_context(trained, tmp_path):
    spec = METHODS.get("baseline").resolve(TINY)
    assert spec["text_prompt"] == "offline"
    record = new_record(suite="t", method="baseline", benchmark="b", dataset="synthetic_coco", profile="smoke",
                        method_spec={"plugin": "baseline", **spec,
                                     "stage_hashes": {"prompts": "p1", "proposals": "q1"}},
                        weights={"clip": {"arch": "tiny-vit-p16", "source": "random", "seed": 0}})
    path = write_record(tmp_path / "baseline.json", record)
    model = load_demo_model(method=None, options={}, weights=None, stages_from=path, cache_dir=trained["cache"])
    assert torch.equal(model.segmenter.text.ctx, trained["ctx"])
    assert model.weights["stages"] == {"prompts": "p1", "proposals": "q1"}


def test_training_free_method_needs_no_stages_and_real_clip_means_real_output(tmp_path):
    """`--method sclip` with the committed MiniWorld CLIP: nothing is flagged meaningless; with random weights, only
    CLIP is (no untrained stages: there are none); --stages-from does not apply."""
    opts = {"clip_arch": "miniworld-vit-p8", "short_side": 64, "crop": 64, "stride": 32}
    model = load_demo_model(method="sclip", options=opts, weights="results/miniworld/clip.pt", stages_from=None,
                            cache_dir=tmp_path, log=lambda *a: None)
    assert model.meaningless == [] and model.weights["clip"]["source"] == "file" and model.source == "training-free"
    from harness.api import Vocabulary

    scores = model.segmenter.predict(torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8),
                                     Vocabulary(("grass", "sky", "water")))
    assert scores.shape == (3, 64, 80)
    model = load_demo_model(method="naclip", options={"clip_arch": "tiny-vit-p16"}, weights="random",
                            stages_from=None, cache_dir=tmp_path, log=lambda *a: None)
    assert len(model.meaningless) == 1 and "CLIP has random weights" in model.meaningless[0]
    model = load_demo_model(method="proxyclip", options={"clip_arch": "tiny-vit-p16", "dino_arch": "tiny-dino-p8",
                                                         "dino_weights": "random"},
                            weights="random", stages_from=None, cache_dir=tmp_path, log=lambda *a: None)
    assert model.weights["dino"]["source"] == "random" and "DINO has random weights" in model.meaningless[0]
    with pytest.raises(ConfigError, match="training-free: it has no trained stages"):
        load_demo_model(method="sclip", options={}, weights=None, stages_from=tmp_path / "r.json",
                        cache_dir=tmp_path, log=lambda *a: None)


def test_every_random_frozen_part_is_named(tmp_path):
    # Issue 23's shapes in the demo: Talk2DINO's DINOv2 and projection and LPOSS's graph DINO are frozen parts too;
    # each random one is named in the warning, once (ProxyCLIP's DINO keeps its own line).
    model = load_demo_model(method="talk2dino", options={"clip_arch": "tiny-vit-p16",
                                                         "dinov2_arch": "tiny-dinov2-reg-p14",
                                                         "dinov2_weights": "random", "projection_weights": "random"},
                            weights="random", stages_from=None, cache_dir=tmp_path, log=lambda *a: None)
    assert model.meaningless == ["CLIP has random weights ('random' was asked for).",
                                 "DINOv2 has random weights (tiny-dinov2-reg-p14).",
                                 "Talk2DINO's projection has random weights (talk2dino-mlp)."]
    model = load_demo_model(method="lposs", options={"clip_arch": "tiny-vit-p16", "dino_arch": "tiny-dino-p8",
                                                     "dino_weights": "random"},
                            weights="random", stages_from=None, cache_dir=tmp_path, log=lambda *a: None)
    assert [m.split(" has ")[0] for m in model.meaningless] == ["CLIP", "DINO"]
    model = load_demo_model(method="proxyclip", options={"clip_arch": "tiny-vit-p16", "dino_arch": "tiny-dino-p8",
                                                         "dino_weights": "random"},
                            weights="random", stages_from=None, cache_dir=tmp_path, log=lambda *a: None)
    assert sum("DINO has random weights" in m for m in model.meaningless) == 1
