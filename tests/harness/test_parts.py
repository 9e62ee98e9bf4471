"""Parts and the one option coercer (harness.parts): types, ranges, non-finite numbers, booleans where numbers are
expected, unknown keys; errors that name the method, the part and the field; `ps` and `attention` naming the same
registered rules; an out-of-tree rule's own option carried through a plugin."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest

from harness.errors import ConfigError
from harness.parts import Part, coerce_value, find_part, option, part_table, register_part
from harness.registries import METHODS
from methods.components.attention_rules import GPS, Vanilla
from methods.components.last_block import make_rule
from methods.components.queries import Decision
from methods.plugin import Plugin
from methods.training_free_spec import TrainingFreeSpec


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, float("inf")])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ConfigError, match="tau=.* must be a finite number"):
        coerce_value("tau", value, float)
    with pytest.raises(ConfigError, match=r"method 'sclip': .*tau=.* must be a finite number"):
        METHODS.get("sclip").spec({"tau": value})


def test_booleans_are_not_numbers_and_types_are_exact():
    for hint in (int, float):
        with pytest.raises(ConfigError, match="must be an? (integer|number)"):
            coerce_value("x", True, hint)
    with pytest.raises(ConfigError, match="cal_layers=True must be an integer"):
        METHODS.get("deop").spec({"cal_layers": True})  # the DeOP family's coercer used to accept it
    with pytest.raises(ConfigError, match="n_ctx=None must be an integer"):
        METHODS.get("deop").spec({"n_ctx": None})
    with pytest.raises(ConfigError, match="pamr=1 must be true or false"):
        METHODS.get("naclip").spec({"pamr": 1})
    assert coerce_value("x", 3, float) == 3.0 and isinstance(coerce_value("x", 3, float), float)
    assert coerce_value("xs", [1, 2], tuple[float, ...]) == (1.0, 2.0)
    assert coerce_value("xs", 4, tuple[int, ...]) == (4,)  # a scalar is a list of one


def test_ranges_and_choices_name_the_field():
    assert Decision(tau=1, prob_thd=0.5).tau == 1.0
    with pytest.raises(ConfigError, match="prob_thd=1.0 must be < 1"):
        Decision(prob_thd=1.0)
    with pytest.raises(ConfigError, match="tau=0.0 must be > 0"):
        Decision(tau=0)
    with pytest.raises(ConfigError, match="option text_prompt='x' is not one of offline, learnable, templates"):
        METHODS.get("deop").spec({"text_prompt": "x"})


def test_errors_name_method_part_and_field():
    with pytest.raises(ConfigError, match=r"method 'naclip': part attention 'kk\+gauss': option sigma=-1.0 must be >= 0.001"):
        METHODS.get("naclip").spec({"sigma": -1})
    with pytest.raises(ConfigError, match=r"method 'proxyclip': part attention 'proxy': option gamma=0.0 must be > 0"):
        METHODS.get("proxyclip").spec({"gamma": 0})
    with pytest.raises(ConfigError, match=r"method 'naclip': part refinement 'pamr': option pamr_steps=-1 must be >= 0"):
        METHODS.get("naclip").spec({"pamr_steps": -1})
    with pytest.raises(ConfigError, match=r"part refinement 'pamr': option pamr_dilations=0 must be >= 1"):
        METHODS.get("naclip").spec({"pamr_dilations": [8, 0]})
    refinement = METHODS.get("naclip").spec({"pamr_dilations": [2]}).refinement()
    assert (refinement.name, refinement.steps, refinement.dilations) == ("pamr", 10, (2,))
    assert METHODS.get("naclip").spec({"pamr": False}).refinement() is None


def test_ps_and_attention_name_the_same_rules():
    deop, maskclip = METHODS.get("baseline+ps"), METHODS.get("maskclip")
    assert deop.spec({"attention": "qq"}).ps == "qq"  # the training-free option name is an alias of `ps`
    assert maskclip.spec({"ps": "gps"}).attention == "gps"  # and `ps` an alias of `attention`
    # the family's old names are aliases of the table's rules, kept as written (records and references unchanged)
    assert maskclip.spec({}).attention == "identity" and maskclip.spec({}).rule() == GPS(1.0)
    assert maskclip.spec({"attention": "gps"}).rule() == GPS(1.0) and make_rule("qk") == make_rule("none") == Vanilla()
    assert deop.spec({"ps": "identity", "alpha": [1.0]}).ps == "identity"
    with pytest.raises(ConfigError, match="attention='mps' is not one of"):  # needs proposal masks: not here
        maskclip.spec({"attention": "mps"})
    assert find_part("attention", "gps") is GPS


def test_an_out_of_tree_rule_option_is_carried_and_checked():
    @register_part
    @dataclass(frozen=True)
    class Blend(Vanilla):
        name: ClassVar[str] = "test-blend"
        description: ClassVar[str] = "tests: a rule with an option of its own"
        blend: float = option(0.5, "weight", low=0.0, high=1.0)

    try:
        plugin = Plugin("test-blend-clip", "tests", spec_type=TrainingFreeSpec, attention="test-blend", blend=0.25)
        spec = plugin.spec({})
        assert spec.extra_options == {"blend": 0.25} and spec.rule() == Blend(0.25)
        assert plugin.resolve({"blend": 1})["extra_options"] == {"blend": 1}
        assert plugin.spec({"blend": 1}).rule().blend == 1.0
        with pytest.raises(ConfigError, match=r"method 'test-blend-clip': part attention 'test-blend': option "
                                              r"blend=2.0 must be <= 1"):
            plugin.spec({"blend": 2})
        assert "extra_options" not in METHODS.get("clip").resolve({})  # in-tree records keep their form
        with pytest.raises(ConfigError, match=r"unknown option\(s\) 'blend'"):  # not an option of qk
            METHODS.get("clip").spec({"blend": 0.3})
    finally:
        part_table("attention").pop("test-blend")


def test_a_part_needs_kind_name_and_description_and_a_name_once():
    class Nameless(Part):
        kind: ClassVar[str] = "attention"

    with pytest.raises(ConfigError, match="needs a kind, a name and a one-line description"):
        register_part(Nameless)

    class Again(Vanilla):
        name: ClassVar[str] = "gps"

    with pytest.raises(ConfigError, match="'gps' is taken by"):
        register_part(Again)


def test_list_parts_prints_every_kind_with_options(capsys):
    from harness.commands.list import print_parts

    print_parts(None)
    out = capsys.readouterr().out
    assert "attention:" in out and "decision:" in out and "pooling:" in out and "refinement:" in out
    assert "sigma: a number = 5.0" in out and "tau: a number = 40.0" in out and "(>= 0; <= 1)" in out


def test_stage_keys_hold_trained_part_options_and_not_inference_only_ones():
    """The head stage's key holds the resolved options of what it trains (an out-of-tree part's included) and
    leaves out inference-only ones: two plugins that differ in a head-changing option of an out-of-tree rule do not
    share the head stage, two that differ only in an inference-only option do (methods/pipelines/assemble.py keys
    the head stage by `trained_options`)."""
    from methods.pipelines.assemble import INFERENCE_ONLY

    @register_part
    @dataclass(frozen=True)
    class Tuned(Vanilla):
        name: ClassVar[str] = "test-tuned"
        description: ClassVar[str] = "tests: a rule with a trained and an inference-only option"
        scale: float = option(1.0, "changes what the head learns")
        chunk: int = option(4, "tokens per call", low=1, inference_only=True)

    try:
        def key(**options):
            return Plugin("t", "tests", text_prompt="learnable", ps="test-tuned", **options).spec(
                {}).trained_options(INFERENCE_ONLY)

        assert key(scale=2.0) != key(scale=3.0)  # a head option: different head stages
        assert key(chunk=2) == key(chunk=8) == key()  # inference only: the same stage
        assert key(test_short_side=320) == key()  # the spec's own inference-only fields, as before
        in_tree = METHODS.get("deop").spec({})  # in-tree specs: the key holds what it held before
        assert in_tree.trained_options(INFERENCE_ONLY) == {k: v for k, v in in_tree.as_dict().items()
                                                             if k not in INFERENCE_ONLY}
    finally:
        part_table("attention").pop("test-tuned")


def test_a_cells_options_are_resolved_once(monkeypatch):
    from methods.spec import MethodSpec

    plugin = Plugin("t-once", "tests", text_prompt="learnable", clip_weights="random")
    calls = []
    original = MethodSpec.resolve.__func__
    monkeypatch.setattr(MethodSpec, "resolve", classmethod(lambda cls, v, **kw: calls.append(1) or original(cls, v,
                                                                                                            **kw)))
    options = {"ps": "gps", "alpha": [1.0]}
    spec = plugin.spec(options)
    assert plugin.resolve(dict(options)) == spec.as_dict() and plugin.preflight(options) == []
    assert plugin.benchmark_settings(options, "coco_stuff_171") is None and plugin.spec(options) is spec
    assert len(calls) == 1
    with pytest.raises(ConfigError):  # a bad option is reported every time, never cached
        plugin.spec({"ps": "nope"})
    with pytest.raises(ConfigError):
        plugin.spec({"ps": "nope"})
