"""FLOSS wired into the dense pipeline (components/template_axis.py, pipelines/dense.py, tools/template_ranking.py):
the one-expert-at-a-time fusion against a hand-computed case and the all-experts rule, expert classifiers from
per-template embeddings against FLOSS's formula, the rankings path's fields, a whole-image prediction against a
computation written here from naclip.py's fusion mode, and the ranking pass against one template at a time."""

from __future__ import annotations

import json

import cv2
import pytest
import torch
import torch.nn.functional as F
from floss_reference import add_image, expert_fusion, expert_text_embeddings

from harness.api import MethodEnv, Vocabulary
from harness.errors import ConfigError
from harness.registries import METHODS
from methods.components.template_axis import (
    FlossTemplates,
    TemplateEntropy,
    expert_classifiers,
    fuse_experts,
    parse_templates,
)
from methods.components.text import IMAGENET_TEMPLATES, TextEncoder
from methods.pipelines.dense import protocol_size
from methods.tools.template_ranking import template_rankings

NAMES = ["red disc", "blue square", "grass"]
TINY = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 48, "mode": "whole"}


def test_fusion_one_expert_at_a_time_by_hand():
    """3 classes (= experts), 4 pixels: claimed by none, by expert 1 alone, by experts 0 and 2 (2 surer), and by
    0 and 2 at equal confidence (the first wins)."""
    px = lambda *cols: torch.tensor(cols, dtype=torch.float32).T.reshape(3, 1, 4)  # noqa: E731 - columns: pixels
    e0 = px([.2, .5, .3], [.1, .1, .8], [.5, .3, .2], [.6, .2, .2])
    e1 = px([.5, .3, .2], [.2, .7, .1], [.4, .3, .3], [.5, .3, .2])
    e2 = px([.1, .1, .8], [.3, .3, .4], [.1, .2, .7], [.2, .2, .6])
    default = px([.3, .3, .4], [.4, .4, .2], [.2, .6, .2], [.1, .8, .1])
    experts = torch.stack([e0, e1, e2])
    # claims (expert e claims where its argmax is e): pixel 0 {2}; pixel 1 {1, 2}, own .7 > .4; pixel 2 {0, 2},
    # own .5 < .7; pixel 3 {0, 2}, own .6 = .6 -> the first
    expected = torch.stack([e2[:, 0, 0], e1[:, 0, 1], e2[:, 0, 2], e0[:, 0, 3]], dim=1)[:, None]
    out = fuse_experts(lambda e: experts[e], 3, default)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out, expert_fusion(experts, default))
    always = lambda c: px(*[[.8 if k == c else .1 for k in range(3)]] * 4)  # noqa: E731 - argmax c everywhere
    nobody = torch.stack([always(1), always(2), always(0)])  # no expert ever argmaxes its own class
    torch.testing.assert_close(fuse_experts(lambda e: nobody[e], 3, default), default)


def test_fusion_one_at_a_time_equals_all_at_once_with_a_batch_dimension():
    g = torch.Generator().manual_seed(1)
    experts = F.softmax(3 * torch.randn(4, 2, 4, 5, 6, generator=g), dim=2)  # (E, B, K, H, W)
    default = F.softmax(torch.randn(2, 4, 5, 6, generator=g), dim=1)
    out = fuse_experts(lambda e: experts[e], 4, default)
    for b in range(2):
        torch.testing.assert_close(out[b], expert_fusion(experts[:, b], default[b]))


def test_expert_classifiers_from_per_template_embeddings_follow_flosss_formula():
    table = {}

    def encode(prompts):
        for p in prompts:
            table.setdefault(p, torch.randn(6, generator=torch.Generator().manual_seed(len(table))))
        return torch.stack([table[p] for p in prompts])

    templates = ("a {}.", "the {}!", "{} photo")
    names = ["cat", "dog"]
    experts = [[0], [1, 2]]
    reference, _ = expert_text_embeddings(encode, names, experts, templates)
    per_template = torch.stack([F.normalize(encode([t.format(n) for n in names]), dim=-1) for t in templates])
    torch.testing.assert_close(expert_classifiers(per_template, experts), reference)


def test_rankings_path_fields_and_query_experts(tmp_path):
    assert parse_templates("floss:r/{method}_{dataset}.json") == ("floss", None)
    with pytest.raises(ConfigError, match="may hold"):
        parse_templates("floss:r/{model}.json")
    ranking = lambda *ids: [{"template_id": t, "entropy": 0.1 * i, "pixel_percentage": 1.0}  # noqa: E731
                            for i, t in enumerate(ids)]
    (tmp_path / "naclip_voc.json").write_text(json.dumps(
        {"classes": {"cat": {"entropy_ranking": ranking(5, 6, 7)}, "dog": {"entropy_ranking": ranking(9, 8)}}}))
    floss = FlossTemplates.from_option(f"floss:{tmp_path}/{{method}}_{{dataset}}.json", 2, "naclip")
    assert floss.rankings_file("voc") == f"{tmp_path}/naclip_voc.json"
    # queries: "cat", "kitten" (class 0), "dog" (class 1): each query takes its class's experts
    assert floss.query_experts("voc", ["cat", "dog"], [0, 0, 1]) == [[5, 6], [5, 6], [9, 8]]
    with pytest.raises(ConfigError, match="no such rankings file"):
        floss.query_experts("ade", ["cat", "dog"], [0, 1])


def _env():
    return MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=None, device="cpu", progress=False,
                     log=lambda *a: None)


def _rankings_file(tmp_path, experts):
    rows = {name: {"entropy_ranking": [{"template_id": t, "entropy": 0.0, "pixel_percentage": 1.0} for t in ids]}
            for name, ids in zip(NAMES, experts, strict=True)}
    path = tmp_path / "maskclip_synthetic_coco.json"
    path.write_text(json.dumps({"classes": rows}))
    return f"floss:{tmp_path}/{{method}}_{{dataset}}.json"


def test_whole_image_floss_prediction_by_hand(tmp_path):
    """naclip.py fusion mode on one window: per classifier softmax(tau * cosine) at the patch grid, bilinear to the
    window, fusion; then bilinear to the image and softmax(tau * fused) (postprocess_result)."""
    experts = [[3, 40, 7], [0, 1], [62, 2, 9, 11, 5]]
    fitted = METHODS.get("maskclip").fit({**TINY, "templates": _rankings_file(tmp_path, experts),
                                          "floss_top_n": 4}, _env())
    seg = fitted.segmenter
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    vocab = Vocabulary(NAMES, dataset="synthetic_coco")
    scores = seg.predict(image, vocab)
    h, w = protocol_size(40, 56, 48, 2048)
    hwc = cv2.resize(image.permute(1, 2, 0).numpy().copy(), (w, h), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(hwc).permute(2, 0, 1)[None].float()
    feats = seg.clip(seg.clip.normalise(x))

    def encode(prompts):  # each prompt alone through the same text tower (the template "{}" is the prompt)
        return TextEncoder(seg.text, templates=("{}",))(prompts)

    expert_text, default_text = expert_text_embeddings(encode, NAMES, [ids[:4] for ids in experts])
    torch.testing.assert_close(default_text, seg.text(NAMES), atol=1e-5, rtol=1e-5)

    def probs(classifier):
        logits = torch.einsum("bdhw,qd->bqhw", feats, classifier)
        return F.interpolate(torch.softmax(40 * logits, dim=1), size=(h, w), mode="bilinear", align_corners=False)

    fused = expert_fusion(torch.stack([probs(c)[0] for c in expert_text]), probs(default_text)[0])
    fused = F.interpolate(fused[None], size=(40, 56), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(scores, torch.softmax(40 * fused, dim=0), atol=1e-5, rtol=1e-4)
    assert seg._floss_cache["experts"].shape[:2] == (3, 3)


def test_prepare_vocabulary_prepares_floss_experts_too(tmp_path):
    # Issue 28: after prepare_vocabulary the next call does per-image work only (the speed task counts FLOPs in
    # it): no text FLOPs, no expert classifiers built, the same count as the call after it.
    from harness import speed

    fitted = METHODS.get("maskclip").fit({**TINY, "templates": _rankings_file(tmp_path, [[3, 40], [0], [62, 2]])},
                                         _env())
    seg = fitted.segmenter
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    vocab = Vocabulary(NAMES, dataset="synthetic_coco")
    with torch.inference_mode():
        assert seg.prepare_vocabulary(vocab) is True
    assert seg._floss_cache["experts"].shape[:2] == (3, 3)

    def counted():
        timer = speed.StageTimer(torch.device("cpu"), count_flops=True)
        with torch.no_grad():
            seg.predict_batch([image], vocab, timer=timer)
        return timer.flops

    first, second = counted(), counted()
    assert first.get("text", 0) == 0 and first == second


def test_floss_is_refused_where_there_are_no_window_probabilities(tmp_path):
    value = _rankings_file(tmp_path, [[0], [1], [2]])
    for plugin, match in (("lposs", "coupling"), ("talk2dino", "image model")):
        with pytest.raises(ConfigError, match=match):
            METHODS.get(plugin).resolve({"templates": value})
    with pytest.raises(ConfigError, match="floss_top_n"):
        METHODS.get("maskclip").resolve({"templates": value, "floss_top_n": 0})


def test_ranking_pass_equals_one_template_at_a_time():
    """Templates go through the dense path stacked as channels (windows, resizing, PAMR act per channel): the
    same statistics as one pass per template, NACLIP (PAMR on, sliding windows)."""
    fitted = METHODS.get("naclip").fit({"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 48,
                                        "crop": 32, "stride": 16, "pamr_dilations": [1, 2]}, _env())
    seg = fitted.segmenter
    g = torch.Generator().manual_seed(2)
    images = [torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8, generator=g) for _ in range(2)]
    vocab = Vocabulary(NAMES, dataset="synthetic_coco")
    got = template_rankings(seg, iter(images), vocab)
    from methods.components.queries import QuerySet, class_probabilities

    queries = QuerySet.plain(NAMES)
    per_template = seg.template_classifiers(NAMES)
    stats = TemplateEntropy(len(IMAGENET_TEMPLATES), 3)
    for image in images:
        add_image(stats, [class_probabilities(seg.query_logits(image, vocab, per_template[t]), queries, 40.0)
                         for t in range(len(IMAGENET_TEMPLATES))])
    expected = stats.as_json(NAMES)
    for name in NAMES:
        a, b = got["classes"][name]["entropy_ranking"], expected["classes"][name]["entropy_ranking"]
        assert [r["template_id"] for r in a] == [r["template_id"] for r in b]
        assert [r["entropy"] for r in a] == pytest.approx([r["entropy"] for r in b], rel=1e-4, abs=1e-6)
        assert [r["pixel_percentage"] for r in a] == pytest.approx([r["pixel_percentage"] for r in b])


@pytest.mark.parametrize("args, message", [
    (["--only", "coco-stuff/imagenet/naclip", "--out", "r.yaml"], "ends in .json"),
    (["--only", "coco-stuff/*/naclip", "--out", "r.json"], "exactly one"),
    (["--only", "nowhere/*", "--out", "r.json"], "matches no cell")])
def test_the_rank_command_refuses_before_building_anything(tmp_path, capsys, args, message):
    from harness.__main__ import main

    args = [a if a not in ("r.yaml", "r.json") else str(tmp_path / a) for a in args]
    assert main(["templates", "rank", "suites/templates.yaml", "--profile", "miniworld", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_record_names_the_rankings_file_of_its_method_and_dataset(tmp_path):
    from harness.results import file_sha256

    value = _rankings_file(tmp_path, [[0], [1], [2]])  # maskclip_synthetic_coco.json
    settings = METHODS.get("maskclip").benchmark_settings({"templates": value}, "synthetic_coco")
    path = tmp_path / "maskclip_synthetic_coco.json"
    assert settings["floss_rankings"] == {"file": str(path), "sha256": file_sha256(path), "top_n": 4}
    naclip = METHODS.get("naclip").benchmark_settings({"templates": value}, "synthetic_coco")["floss_rankings"]
    assert naclip["file"] == str(tmp_path / "naclip_synthetic_coco.json") and naclip["sha256"] is None  # not ranked
    assert "floss_rankings" not in METHODS.get("maskclip").benchmark_settings({}, "synthetic_coco")


def test_a_missing_rankings_file_stops_the_run_before_anything_starts(tmp_path, capsys):
    # found by the preflight, for every cell that would read it, with the command that writes it; nothing ran
    from harness.__main__ import main

    out = tmp_path / "runs"
    code = main(["run", "suites/templates.yaml", "--profile", "miniworld", "--out", str(out), "--no-progress",
                 "--only", "coco-stuff/floss/maskclip,coco-stuff/floss/naclip",
                 "--set", f"settings.floss.method_options.templates=floss:{tmp_path}/{{method}}_{{dataset}}.json"])
    err = capsys.readouterr().err
    assert code != 0 and "nothing was started" in err
    for method in ("maskclip", "naclip"):
        assert f"FLOSS template rankings {tmp_path}/{method}_miniworld.json of {method} on miniworld" in err
    assert "python -m harness templates rank SUITE --only BENCHMARK/SETTING/naclip" in err
    assert not out.exists() or not any(out.rglob("*.json"))
    # the committed rankings: the same cells pass the preflight (a dry run plans them)
    assert main(["run", "suites/templates.yaml", "--profile", "miniworld", "--out", str(out), "--dry-run",
                 "--only", "coco-stuff/floss/maskclip,coco-stuff/floss/naclip"]) == 0
