"""A contract test for every registered method: it builds, predicts on a tiny input with the right shapes,
takes one training step that reaches only its trainable parts, and is timed by the speed task. A new plugin
gets these tests by being registered, with no test code of its own."""

import pytest
import torch

from harness.api import MethodEnv, Segmenter, Vocabulary
from harness.registries import METHODS

TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "proposals": {"preset": "smoke"},
        "prompt_layers": [1, 2], "test_short_side": 64}
# the same tiny models for the proposal-free kind (a tiny random DINO for ProxyCLIP's proxy)
TINY_TRAINING_FREE = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 64, "crop": 32,
                      "stride": 16, "pamr_dilations": [1, 2], "dino_arch": "tiny-dino-p8", "dino_weights": "random"}
# what a method needs beyond those on a 3-block CLIP with 2x2-patch windows (SC-CLIP: its layer indices and an LOF
# neighbourhood smaller than the 4 patches of a window; Talk2DINO: a tiny DINOv2 and a random projection)
TINY_EXTRA = {"scclip": {"pre_layer": 2, "post_layer": 1, "multi_start_layer": 1, "multi_end_layer": 2, "lof_k": 2},
              "talk2dino": {"dinov2_arch": "tiny-dinov2-reg-p14", "dinov2_weights": "random",
                            "projection_weights": "random"}}
NAMES = ["red disc", "blue square", "grass"]
KINDS = ("one-pass", "multi-pass", "training-free")


def _plugins() -> list[str]:
    # every registered method plugin (the harness-core test doubles of tests/doubles.py are not methods)
    return [n for n in METHODS.names() if type(METHODS.get(n)).__module__.startswith("methods.")]


def _tiny(name: str) -> dict:
    base = TINY_TRAINING_FREE if METHODS.get(name).kind == "training-free" else TINY
    return {**base, **TINY_EXTRA.get(name, {})}


@pytest.fixture(params=_plugins())
def method(request):
    return request.param


def _env(tmp_path):
    return MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                     progress=False, log=lambda *a: None)


def _build(name, tmp_path):
    env = _env(tmp_path)
    return METHODS.get(name).build_untrained(_tiny(name), env)


def test_resolve_gives_a_complete_json_spec(method):
    import json

    spec = METHODS.get(method).resolve(_tiny(method))
    assert json.loads(json.dumps(spec)) == json.loads(json.dumps(spec))  # JSON-able for the record
    assert spec["clip_arch"] == "tiny-vit-p16" and spec["kind"] in KINDS and METHODS.get(method).kind == spec["kind"]


def test_predict_shapes_and_values(method, tmp_path):
    fitted = _build(method, tmp_path)
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    vocab = Vocabulary(NAMES, dataset="synthetic_coco", seen=(True, True, False))
    scores = fitted.segmenter.predict(image, vocab)
    assert isinstance(fitted.segmenter, Segmenter)
    assert scores.shape == (3, 50, 70)
    assert torch.isfinite(scores).all() and (scores >= 0).all()
    assert fitted.weights["clip"]["source"] == "random"  # asked for random weights: recorded as such


def test_one_training_step_reaches_only_trainable_parts(method, tmp_path):
    fitted = _build(method, tmp_path)
    spec = METHODS.get(method).spec(_tiny(method))
    segmenter = fitted.segmenter
    if spec.kind == "training-free":
        assert not spec.trains and fitted.stages == {} and segmenter.trainable_parameters() == []
        assert not any(p.requires_grad for p in segmenter.parameters())
        assert METHODS.get(method).fit(_tiny(method), _env(tmp_path)).stages == {}  # fit trains nothing either
        pytest.skip(f"{method} is training-free: it has no training stage (checked: fit runs no stage, no "
                    "parameter is trainable)")
    if not spec.trains_head:
        assert segmenter.trainable_parameters() == []
        pytest.skip(f"{method} has nothing to train in stage 3 (frozen CLIP, mask pooling / multi-pass)")
    segmenter.train()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    labels = torch.randint(0, 3, (2, 64, 64))
    labels[:, :8] = 255
    losses = segmenter((images, labels, NAMES))
    assert set(losses) == {"loss_focal", "loss_dice"}
    sum(losses.values()).backward()
    trainable = dict(segmenter.named_parameters())
    got_grad = {n for n, p in trainable.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert got_grad, "no trainable part received a gradient"
    assert all(trainable[n].requires_grad for n in got_grad)
    assert not any(n.startswith(("dense.visual.", "maskformer.")) for n in got_grad)  # CLIP and proposals frozen
    if spec.visual_prompt == "add":
        assert any("prompt" in n for n in got_grad)
    if spec.text_prompt == "learnable":
        assert "text.ctx" in got_grad
    if spec.cal != "none":
        assert any(n.startswith("head.") for n in got_grad)


def test_batched_prediction_equals_one_by_one(method, tmp_path):
    """Throughput mode is the same computation: images of one size give the scores they give alone."""
    segmenter = _build(method, tmp_path).segmenter
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8, generator=g) for _ in range(2)]
    vocab = Vocabulary(NAMES, dataset="synthetic_coco", seen=(True, True, False))
    batched = segmenter.predict_batch(images, vocab)
    for image, scores in zip(images, batched):
        torch.testing.assert_close(scores, segmenter.predict(image, vocab), rtol=1e-4, atol=1e-5)


def test_the_plugin_authors_kit_passes(method, tmp_path):
    """harness.testing.check_plugin: the checks an out-of-tree plugin runs on itself hold for every in-tree one."""
    from harness.testing import check_plugin

    assert check_plugin(method, _tiny(method), cache_dir=tmp_path) == [
        "protocol", "listing", "options", "dry-run", "predict", "timing"]


def test_the_kit_fails_a_plugin_that_breaks_the_contract():
    from harness.testing import check_plugin

    with pytest.raises(AssertionError, match="double-echo: does not meet harness.api.SegmentationMethod"):
        check_plugin("double-echo")  # the harness core's test double resolves options but builds nothing


def test_prepare_vocabulary_leaves_a_call_only_per_image_work(method, tmp_path):
    # Issue 28: the speed task counts a method's FLOPs in its warm-up call once prepare_vocabulary said True; that
    # call must then do what a later call does: no text FLOPs, the same count as the call after it.
    from harness import speed

    segmenter = _build(method, tmp_path).segmenter
    image = torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8)
    vocab = Vocabulary(NAMES, dataset="synthetic_coco")

    def counted():
        timer = speed.StageTimer(torch.device("cpu"), count_flops=True)
        with torch.no_grad(), speed.no_grad_params(segmenter):
            segmenter.predict_batch([image], vocab, timer=timer)
        return timer.flops

    with torch.inference_mode():
        assert segmenter.prepare_vocabulary(vocab) is True  # every in-tree pipeline offers it
    first, second = counted(), counted()
    assert first.get("text", 0) == 0 and first == second and sum(first.values()) > 0
