"""The attention-rule table: every registered rule mixes tokens exactly as its own explicit matrix says, the
matrices are the ones written out by hand here, and the `ps` option, the figure and the listing follow the table."""

import math

import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from methods.components.attention_rules import (
    ATTENTION_RULES,
    GPS,
    MPS,
    AttnRule,
    CoverageIdentity,
    Vanilla,
    apply_attention,
    register_rule,
    rule_descriptions,
    rules_for,
)
from methods.plugin import Plugin
from methods.spec import MethodSpec


def _inputs(seed: int = 0):
    torch.manual_seed(seed)
    attn = nn.MultiheadAttention(16, 4, batch_first=True)
    x = torch.randn(7, 16)
    masks = torch.rand(7, 3)
    masks[0] = 1.0  # CLS row of ones, as DenseCLIP hands them over
    return attn, x, masks


def _instances(cls):
    return [cls(a) for a in (0.0, 0.3, 1.0)] if cls is GPS else [cls()]


@pytest.mark.parametrize("name", sorted(ATTENTION_RULES))
def test_every_rule_mixes_with_its_explicit_matrix(name):
    attn, x, masks = _inputs()
    for rule in _instances(ATTENTION_RULES[name]):
        m = masks if rule.needs_masks else None
        # context rules (training-free): x is CLS + a 2x3 patch grid; the proxy's features lie on that same grid,
        # so its resizing of the values is the identity and its matrix applies to the patch tokens
        context = {"grid": (2, 3), "proxy": torch.randn(1, 8, 2, 3, generator=torch.Generator().manual_seed(3))}
        context = {k: context[k] for k in rule.context}
        tokens = x[1:] if "proxy" in context else x
        matrix = rule.attention(x, attn, m, **context)
        assert matrix.shape == (attn.num_heads, len(tokens), len(tokens))
        torch.testing.assert_close(rule.mix(x[None], attn, None if m is None else m[None], **context)[0],
                                   apply_attention(attn, tokens, matrix), atol=1e-5, rtol=1e-5)


def test_explicit_matrices_match_hand_written_ones():
    attn, x, masks = _inputs(1)
    # torch's own MultiheadAttention weights, per head, are the vanilla matrix
    _, weights = attn(x[None], x[None], x[None], need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(Vanilla().attention(x, attn, None), weights[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(GPS(0.25).attention(x, attn, None), 0.25 * torch.eye(7) + 0.75 * weights[0],
                               atol=1e-6, rtol=1e-5)
    coverage = CoverageIdentity().attention(x, attn, masks)
    torch.testing.assert_close(coverage[2], torch.diag(masks.sum(-1)))
    expected = torch.tensor([[math.exp(float(masks[i] @ masks[j])) for j in range(7)] for i in range(7)])
    torch.testing.assert_close(MPS().attention(x, attn, masks)[0], expected / expected.sum(-1, keepdim=True))


def test_placement_from_a_spec():
    assert rules_for("none", MethodSpec()) == {}
    assert rules_for("gps", MethodSpec(ps="gps", alpha=(1.0, 0.0, 0.5))) == {-1: GPS(1.0), -3: GPS(0.5)}
    assert rules_for("coverage", MethodSpec(ps="coverage")) == {-1: CoverageIdentity()}
    assert rules_for("mps", MethodSpec(ps="mps")) == {-1: MPS()}
    assert [GPS(1.0).label(), CoverageIdentity().label(), MPS().label()] == [
        "GPS alpha=1", "identity x mask coverage", "MPS"]


def test_ps_choices_are_the_table():
    assert [n for n, _ in rule_descriptions()] == list(ATTENTION_RULES)
    assert all(description for _, description in rule_descriptions())
    with pytest.raises(ConfigError, match="none, gps, coverage, mps"):
        Plugin("bad-ps", "a plugin with an unknown rule", ps="gpss")


def test_a_rule_name_cannot_be_taken_twice():
    class Again(AttnRule):
        name = "gps"
        description = "another GPS"

    with pytest.raises(ConfigError, match="taken"):
        register_rule(Again)
    assert ATTENTION_RULES["gps"] is GPS
