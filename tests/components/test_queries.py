"""Synonyms, the softmax temperature, the background threshold and SCLIP's area threshold on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import ConfigError
from methods.components.queries import Decision, QuerySet, class_probabilities, decide


def test_name_lines_become_queries_mapped_to_their_class():
    qs = QuerySet.from_lines(["sky, wall", "cat", "tvmonitor, screen, monitor"], background=0)
    assert qs.queries == ("sky", "wall", "cat", "tvmonitor", "screen", "monitor")
    assert qs.query_class == (0, 0, 1, 2, 2, 2) and qs.n_classes == 3 and qs.has_synonyms and qs.background == 0
    assert QuerySet.from_lines(["a; b", "c"], separator="; ").query_class == (0, 0, 1)
    assert QuerySet.plain(["a, b", "c"]).queries == ("a, b", "c")


def test_class_probability_is_the_max_over_synonyms_after_a_softmax_over_all_queries():
    qs = QuerySet.from_lines(["bg", "cat, kitty", "dog"], background=0)  # queries: bg, cat, kitty, dog
    logits = torch.tensor([[0.10, 0.20, 0.25, 0.05],   # pixel 0
                           [0.30, 0.10, 0.10, 0.12]]).T.reshape(4, 1, 2)
    probs = class_probabilities(logits, qs, tau=10.0)
    for pixel, row in enumerate([[0.10, 0.20, 0.25, 0.05], [0.30, 0.10, 0.10, 0.12]]):
        exps = [math.exp(10 * v) for v in row]
        p = [e / sum(exps) for e in exps]
        expected = [p[0], max(p[1], p[2]), p[3]]
        assert probs[:, 0, pixel].tolist() == pytest.approx(expected, rel=1e-6)
    # without synonyms it is the plain softmax
    plain = QuerySet.plain(["a", "b"])
    torch.testing.assert_close(class_probabilities(torch.tensor([[1.0], [2.0]]), plain, 2.0),
                               torch.softmax(torch.tensor([[2.0], [4.0]]), dim=0))


def test_background_threshold_sends_uncertain_pixels_to_class_0():
    qs = QuerySet.plain(["background", "cat", "dog"], background=0)
    probs = torch.tensor([[0.2, 0.1, 0.4],   # background
                          [0.7, 0.45, 0.3],   # cat
                          [0.1, 0.45, 0.3]]).view(3, 1, 3)  # dog
    labels = decide(probs, qs, Decision(prob_thd=0.5)).argmax(0).flatten().tolist()
    assert labels == [1, 0, 0]  # 0.7 >= 0.5 stays cat; 0.45 and 0.4 fall below: background
    assert decide(probs, qs, Decision(prob_thd=0.0)).argmax(0).flatten().tolist() == [1, 1, 0]  # plain argmax


def test_area_threshold_suppresses_small_foreground_classes():
    qs = QuerySet.plain(["background", "cat", "dog"], background=0)
    # 10 pixels: 9 argmax cat, 1 argmax dog -> dog's area 1 of 10 foreground, not above 0.1 * 10: suppressed.
    probs = torch.zeros(3, 1, 10)
    probs[0] = 0.05
    probs[1, 0, :9], probs[2, 0, :9] = 0.8, 0.15
    probs[1, 0, 9], probs[2, 0, 9] = 0.3, 0.65
    labels = decide(probs, qs, Decision(area_thd=0.1)).argmax(0).flatten().tolist()
    assert labels == [1] * 9 + [1]  # dog zeroed: the last pixel falls to cat (0.3 > 0.05)
    labels = decide(probs, qs, Decision(area_thd=0.05)).argmax(0).flatten().tolist()
    assert labels == [1] * 9 + [2]  # 1 > 0.05 * 10: dog kept


def test_thresholds_without_background_are_refused():
    qs = QuerySet.plain(["grass", "sky"])
    with pytest.raises(ConfigError, match="prob_thd=0.1 needs a background class.*'grass'"):
        decide(torch.rand(2, 3, 3), qs, Decision(prob_thd=0.1))
    with pytest.raises(ConfigError, match="area_thd"):
        Decision(area_thd=0.1).check(qs)
    with pytest.raises(ConfigError, match="tau"):
        Decision(tau=0)
    with pytest.raises(ConfigError, match="prob_thd"):
        Decision(prob_thd=1.5)


def test_background_need_not_be_class_0():
    qs = QuerySet.plain(["cat", "dog", "background"], background=2)
    probs = torch.tensor([[0.45, 0.9], [0.3, 0.05], [0.25, 0.05]]).view(3, 1, 2)
    assert decide(probs, qs, Decision(prob_thd=0.5)).argmax(0).flatten().tolist() == [2, 0]
    with pytest.raises(ConfigError, match="not a class index"):
        QuerySet.plain(["a"], background=1)
