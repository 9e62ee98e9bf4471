"""TextEncoder pinned against open_clip's `encode_text` on real tokenised prompts (tiny random CLIP)."""

from __future__ import annotations

from collections import OrderedDict

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from harness.errors import ConfigError
from methods.components import text as text_module
from methods.components.text import IMAGENET_TEMPLATES, VILD_TEMPLATES, TextEncoder
from methods.components.weights import build_clip

NAMES = ["cat", "wall-concrete", "road, route", "diningtable", " potted plant "]
ATOL = 2e-6


@pytest.fixture(scope="module")
def clip():
    return build_clip("tiny-vit-p16", "random", seed=3)[0]


def encode(model, prompts):
    with torch.no_grad():
        return F.normalize(model.encode_text(open_clip.tokenize(prompts)), dim=-1)


def test_template_sets_are_the_published_lists():
    assert IMAGENET_TEMPLATES == tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)
    assert len(VILD_TEMPLATES) == 14 and len(set(VILD_TEMPLATES)) == 14
    assert all(t.count("{}") == 1 for t in VILD_TEMPLATES)


@pytest.mark.parametrize("templates", ["single", "vild", ["{} in the wild", "a {}"]])
def test_templates_equal_averaged_encode_text(clip, templates):
    enc = TextEncoder(clip, "templates", templates=templates)
    with torch.no_grad():
        got = enc(NAMES)
    expected = []
    for name in NAMES:
        per_template = encode(clip, [t.format(name.strip()) for t in enc.templates])
        expected.append(F.normalize(per_template.mean(0), dim=-1))
    assert got.shape == (len(NAMES), 32)
    torch.testing.assert_close(got, torch.stack(expected), atol=ATOL, rtol=0)


def test_learnable_context_initialised_from_phrase_equals_full_sentence(clip):
    enc = TextEncoder(clip, "learnable", ctx_init="a photo of a")
    assert enc.n_ctx == 4
    with torch.no_grad():
        got = enc(NAMES)
    torch.testing.assert_close(got, encode(clip, [f"a photo of a {n.strip()}." for n in NAMES]), atol=ATOL, rtol=0)


@pytest.mark.parametrize("mode", ["templates", "learnable"])
def test_truncation_after_longest_eos_is_exact(clip, mode):
    kwargs = {"templates": "vild"} if mode == "templates" else {"n_ctx": 16}
    torch.manual_seed(0)
    short = TextEncoder(clip, mode, truncate=True, **kwargs)
    full = TextEncoder(clip, mode, truncate=False, **kwargs)
    if mode == "learnable":
        full.ctx.data.copy_(short.ctx.data)
    with torch.no_grad():
        torch.testing.assert_close(short(NAMES), full(NAMES), atol=ATOL, rtol=0)


def test_learnable_sequence_layout_and_random_init(clip):
    torch.manual_seed(0)
    enc = TextEncoder(clip, "learnable")
    assert enc.ctx.shape == (16, 64)
    assert abs(enc.ctx.std().item() - 0.02) < 0.004  # N(0, 0.02), METHOD_SPEC 2
    ids, eos = enc._learnable_ids(("cat",))
    tok = open_clip.tokenize(["cat."])[0]
    # [SOS] + 16 context slots + "cat" "." + [EOS]
    assert ids[0, 0] == tok[0] and eos.item() == 1 + 16 + 2
    assert torch.equal(ids[0, 17:20], tok[1:4])

    # Same vectors written into the context == a sentence whose tokens have those embeddings.
    phrase = "there is a small"
    with torch.no_grad():
        enc.ctx.data = clip.token_embedding.weight[open_clip.tokenize([phrase])[0, 1:5]].repeat(4, 1)
        got = enc(["dog"])
    torch.testing.assert_close(got, encode(clip, [f"{phrase} " * 4 + "dog."]), atol=ATOL, rtol=0)


def test_gradients_reach_only_the_context(clip):
    enc = TextEncoder(clip, "learnable", n_ctx=8)
    enc.train()
    out = enc(NAMES)
    assert out.requires_grad
    (out * torch.randn_like(out)).sum().backward()
    assert enc.ctx.grad is not None and enc.ctx.grad.abs().sum() > 0
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == ["ctx"]
    assert all(p.grad is None for n, p in enc.named_parameters() if n != "ctx")


def test_cache_hits_for_same_classes_and_invalidates_on_optimizer_step(clip):
    enc = TextEncoder(clip, "learnable", ctx_init="a photo of a")
    enc.eval()
    with torch.no_grad():
        first = enc(NAMES)
        again = enc(NAMES)
        other = enc(NAMES[:2])
    assert again is first and enc.cache_hits == 1 and enc.cache_misses == 2
    torch.testing.assert_close(other, first[:2], atol=ATOL, rtol=0)

    optimiser = torch.optim.SGD([enc.ctx], lr=1.0)
    enc.train()
    loss = enc(NAMES).sum()  # grad mode + trainable context: never served from the cache
    assert enc.cache_hits == 1
    loss.backward()
    optimiser.step()
    enc.eval()
    with torch.no_grad():
        after = enc(NAMES)
        fresh = TextEncoder(clip, "learnable", n_ctx=4)
        fresh.ctx.data.copy_(enc.ctx.data)
        expected = fresh(NAMES)
    assert not torch.allclose(after, first)
    torch.testing.assert_close(after, expected, atol=ATOL, rtol=0)


def test_template_cache_survives_grad_mode_when_nothing_trains(clip):
    enc = TextEncoder(clip, "templates", templates="single")
    a = enc(NAMES)
    b = enc(NAMES)
    assert b is a and not a.requires_grad


def test_embeddings_cached_during_inference_mode_serve_training(clip):
    enc = TextEncoder(clip, "templates", templates="single")
    with torch.inference_mode():
        cached = enc(NAMES)
    features = torch.randn(3, 32, requires_grad=True)
    logits = features @ enc(NAMES).T  # the cache hit is saved for backward: must not be an inference tensor
    logits.sum().backward()
    assert enc.cache_hits == 1 and features.grad is not None
    torch.testing.assert_close(features.grad, cached.sum(0).expand(3, -1))


def test_autocast_bf16_close_to_fp32(clip):
    enc = TextEncoder(clip, "templates", templates="vild")
    with torch.no_grad():
        ref = enc(NAMES)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc(NAMES)
    assert low is not ref  # autocast is part of the cache key
    assert (low.float() * ref).sum(-1).min() > 0.99


def test_bad_arguments_raise_config_errors(clip):
    with pytest.raises(ConfigError, match="template set"):
        TextEncoder(clip, "templates", templates="coco")
    with pytest.raises(ConfigError, match="exactly one"):
        TextEncoder(clip, "templates", templates=["no placeholder"])
    with pytest.raises(ConfigError, match="n_ctx=16"):
        TextEncoder(clip, "learnable", n_ctx=16, ctx_init="a photo of a")
    with pytest.raises(ConfigError, match="learnable"):
        TextEncoder(clip, "templates", n_ctx=4)
    with pytest.raises(ConfigError, match="too long"):
        TextEncoder(clip, "learnable", n_ctx=70)(["a very long class name indeed"])


def test_template_embeddings_are_shared_between_encoders_of_equal_weights(monkeypatch):
    # Two CLIPs built apart from the same seed (two methods of a speed group): the second encoder is served the
    # first one's embeddings, equal to what it computes itself; a changed weight or template set is a miss.
    monkeypatch.setattr(text_module, "SHARED_TEMPLATE_CACHE", OrderedDict())
    first = TextEncoder(build_clip("tiny-vit-p16", "random", seed=5)[0], "templates", templates="vild")
    second = TextEncoder(build_clip("tiny-vit-p16", "random", seed=5)[0], "templates", templates="vild")
    with torch.no_grad():
        a = first(NAMES)
        b = second(NAMES)
        assert b is a and second.shared_hits == 1 and first.shared_hits == 0
        assert torch.equal(second._encode(tuple(n.strip() for n in NAMES)), a)
        other_templates = TextEncoder(build_clip("tiny-vit-p16", "random", seed=5)[0], "templates",
                                      templates="single")(NAMES)
        assert other_templates.shape == a.shape and not torch.equal(other_templates, a)
        second.ln_final.weight.add_(0.5)  # in place: a new version, a new digest
        changed = second(NAMES)
    assert second.shared_hits == 1 and not torch.equal(changed, a)
    assert len(text_module.SHARED_TEMPLATE_CACHE) == 3
