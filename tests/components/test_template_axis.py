"""The template axis (methods/components/template_axis.py): parsing, FLOSS's entropy ranking, expert classifiers
and fusion against hand-computed cases and loops written here from yasserben/FLOSS @ccf1d49
(entropy_metric.py, naclip.py `_load_template_rankings`, `encode_text_features`, `expert_fusion`)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from floss_reference import add_image, expert_fusion, expert_text_embeddings

from harness.errors import ConfigError
from methods.components.template_axis import (
    TemplateEntropy,
    load_rankings,
    parse_templates,
    select_experts,
)
from methods.components.text import IMAGENET_TEMPLATES


def test_template_values(tmp_path):
    assert parse_templates("imagenet") == ("set", IMAGENET_TEMPLATES) and len(IMAGENET_TEMPLATES) == 80
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}."  # OpenAI's order = FLOSS's template ids
    assert parse_templates("single") == ("set", ("a sculpture of a {}.",))
    f = tmp_path / "mine.txt"
    f.write_text("a photo of a {}.\n\nthere is a {} here.\n")
    assert parse_templates(str(f)) == ("file", ("a photo of a {}.", "there is a {} here."))
    assert parse_templates("floss:rankings/x.json") == ("floss", None)
    bad = tmp_path / "bad.txt"
    bad.write_text("a photo of a {}.\nno slot\n")
    for value, match in ((str(bad), r"lines \[2\]"), (str(tmp_path / "none.txt"), "no such file"),
                         ("floss:x.yaml", "rankings file"), ("vild80", "templates"), (3, "templates")):
        with pytest.raises(ConfigError, match=match):
            parse_templates(value)


def test_entropy_ranking_by_hand():
    """Two templates, two classes, one 1x3 image (and a second 1x1 image for template-weighted counts)."""
    p = lambda *cols: torch.tensor(cols).T.reshape(2, 1, -1)  # noqa: E731 - columns are pixels
    stats = TemplateEntropy(n_templates=2, n_classes=2)
    add_image(stats, [p([0.9, 0.1], [0.6, 0.4], [0.2, 0.8]), p([0.5, 0.5], [0.7, 0.3], [0.4, 0.6])])
    add_image(stats, [p([0.99, 0.01]), p([0.3, 0.7])])
    h = lambda a: -(a * math.log(a + 1e-10) + (1 - a) * math.log(1 - a + 1e-10))  # noqa: E731
    # template 0: class 0 pixels 0.9, 0.6 (image 1) and 0.99 (image 2); class 1: 0.2/0.8
    t0c0 = (((h(0.9) + h(0.6)) / 2) * 2 + h(0.99)) / 3
    t1c0 = ((h(0.5) + h(0.7)) / 2 * 2) / 2  # argmax of [0.5, 0.5] is class 0 (first)
    t1c1 = (h(0.4) + h(0.3)) / 2
    ranks = stats.rankings()
    assert [r["template_id"] for r in ranks[0]] == sorted([0, 1], key=lambda t: [t0c0, t1c0][t])
    assert ranks[0][0]["entropy"] == pytest.approx(min(t0c0, t1c0))
    by_id = {r["template_id"]: r for r in ranks[1]}
    assert by_id[0]["entropy"] == pytest.approx(h(0.2)) and by_id[1]["entropy"] == pytest.approx(t1c1)
    assert by_id[0]["pixel_percentage"] == pytest.approx(100 * 1 / 4)
    assert stats.experts(top_n=1) == [[ranks[0][0]["template_id"]], [ranks[1][0]["template_id"]]]


def test_expert_selection_drops_templates_that_never_predicted_the_class(tmp_path):
    rankings = [[{"template_id": 7, "entropy": 0.0, "pixel_percentage": 0.0},
                 {"template_id": 3, "entropy": 0.2, "pixel_percentage": 1.0},
                 {"template_id": 5, "entropy": 0.3, "pixel_percentage": 2.0}]]
    assert select_experts(rankings, 1) == [[3]] and select_experts(rankings, 4) == [[3, 5]]
    with pytest.raises(ConfigError, match="no expert"):
        select_experts([[{"template_id": 1, "entropy": 0.0, "pixel_percentage": 0.0}]])
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"classes": {"cat": {"entropy_ranking": rankings[0]}}}))
    assert load_rankings(f, ["cat"]) == rankings
    with pytest.raises(ConfigError, match="dog"):
        load_rankings(f, ["cat", "dog"])


def test_expert_classifiers_embed_every_class_with_the_experts_templates():
    table = {}

    def encode(prompts):  # a deterministic stand-in text tower: one random vector per prompt
        for p in prompts:
            table.setdefault(p, torch.randn(6, generator=torch.Generator().manual_seed(len(table))))
        return torch.stack([table[p] for p in prompts])

    templates = ("a {}.", "the {}!", "{} photo")
    experts, default = expert_text_embeddings(encode, ["cat", "dog"], [[0], [1, 2]], templates)
    n = lambda v: v / v.norm()  # noqa: E731
    torch.testing.assert_close(experts[0, 1], n(table["a dog."]))
    torch.testing.assert_close(experts[1, 0], n(n(table["the cat!"]) + n(table["cat photo"])))
    torch.testing.assert_close(default[1], n(n(table["a dog."]) + n(table["the dog!"]) + n(table["dog photo"])))
    assert experts.shape == (2, 2, 6)


def test_fusion_by_pixel_rules():
    g = torch.Generator().manual_seed(0)
    k, h, w = 3, 5, 6
    experts = F.softmax(3 * torch.randn(k, k, h, w, generator=g), dim=1)
    default = F.softmax(torch.randn(k, h, w, generator=g), dim=0)
    out = expert_fusion(experts, default)
    cases = set()
    for y in range(h):
        for x in range(w):
            claims = [e for e in range(k) if int(experts[e, :, y, x].argmax()) == e]
            if not claims:
                expected, case = default[:, y, x], "none"
            else:
                best = max(claims, key=lambda e: (float(experts[e, e, y, x]), -e))
                expected, case = experts[best, :, y, x], "one" if len(claims) == 1 else "conflict"
            cases.add(case)
            torch.testing.assert_close(out[:, y, x], expected)
    assert cases == {"none", "one", "conflict"}  # the draw exercises every rule


def test_a_template_file_reaches_the_dense_pipelines_text(tmp_path):
    from harness.api import MethodEnv
    from methods.plugins.maskclip import MASKCLIP

    f = tmp_path / "two.txt"
    f.write_text("a photo of a {}.\nthere is a {} here.\n")
    opts = {"clip_arch": "tiny-vit-p16", "clip_weights": "random", "short_side": 64, "crop": 32, "stride": 16,
            "templates": str(f)}
    assert MASKCLIP.resolve(opts)["templates"] == str(f)
    env = MethodEnv(train_dataset="synthetic_coco", data_root=None, cache_dir=tmp_path, device="cpu",
                    progress=False, log=lambda *a: None)
    text = MASKCLIP.build_untrained(opts, env).segmenter.text
    assert tuple(text.templates) == ("a photo of a {}.", "there is a {} here.")
    with pytest.raises(ConfigError, match="templates"):
        MASKCLIP.resolve({**opts, "templates": "eighty"})
