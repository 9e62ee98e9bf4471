import dataclasses

import pytest
from suite_helpers import BASIC, write

from harness.errors import ConfigError
from harness.suite import load_suite

BASIC = BASIC.replace("table: null_table\n", "")


def test_valid_suite_loads_into_frozen_dataclasses(tmp_path):
    suite = load_suite(write(tmp_path, BASIC))
    assert suite.name == "demo" and suite.profile == "paper"
    assert [m.name for m in suite.methods] == ["double-echo", "strong"]
    assert suite.methods[1].method == "double-echo" and suite.methods[1].options["score"] == 80.0
    assert [s.name for s in suite.settings] == ["default"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.methods[0].name = "x"
    with pytest.raises(TypeError):
        suite.methods[1].options["score"] = 1.0


def test_profile_overrides_are_applied_and_recorded(tmp_path):
    suite = load_suite(write(tmp_path, BASIC), profile="smoke")
    assert suite.benchmarks[0].options["offset"] == 5.0
    assert suite.methods[1].options["score"] == 70.0
    assert suite.profile == "smoke" and len(suite.overrides) == 2


def test_unknown_profile_lists_known(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown profile 'fast'.*paper, smoke"):
        load_suite(write(tmp_path, BASIC), profile="fast")


def test_unknown_top_key_names_file_key_and_line(tmp_path):
    path = write(tmp_path, BASIC + "benchmark: oops\n")
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    msg = str(err.value)
    assert str(path) in msg and "line 11" in msg and "unknown key 'benchmark'" in msg
    assert "Did you mean 'benchmarks'" in msg


def test_unknown_nested_key_names_the_path(tmp_path):
    text = BASIC.replace("{name: voc, task: double-task}", "{name: voc, task: double-task, datset: x}")
    with pytest.raises(ConfigError, match=r"line 8: benchmarks\[1\]\.datset: unknown key 'datset'.*'dataset'"):
        load_suite(write(tmp_path, text))


def test_wrong_type_names_key_and_types(tmp_path):
    text = BASIC.replace("options: {score: 80.0}", "options: [80]")
    with pytest.raises(ConfigError, match=r"methods\[1\]\.options: must be a mapping, got a list"):
        load_suite(write(tmp_path, text))


def test_missing_required_key(tmp_path):
    text = BASIC.replace("suite: demo\n", "")
    with pytest.raises(ConfigError, match="the required key 'suite' is missing"):
        load_suite(write(tmp_path, text))


def test_unknown_method_suggests(tmp_path):
    text = BASIC.replace("  - double-echo\n", "  - double-ech\n")
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, text))
    msg = str(err.value)
    assert "line 4: methods[0].name" in msg and "unknown method 'double-ech'" in msg
    assert "Did you mean 'double-echo'" in msg


def test_unknown_task_and_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"benchmarks\[1\]\.task: unknown task 'nope'"):
        load_suite(write(tmp_path, BASIC.replace("{name: voc, task: double-task}", "{name: voc, task: nope}")))
    text = BASIC.replace("dataset: double-data", "dataset: double-dat")
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]\.dataset: unknown dataset 'double-dat'.*double-data"):
        load_suite(write(tmp_path, text))


def test_duplicate_names_and_duplicate_yaml_keys(tmp_path):
    text = BASIC.replace("{name: strong,", "{name: double-echo,")
    with pytest.raises(ConfigError, match=r"methods\[1\]\.name: duplicate name 'double-echo'"):
        load_suite(write(tmp_path, text))
    with pytest.raises(ConfigError, match=r"line 2.*duplicate key 'suite'"):
        load_suite(write(tmp_path, "suite: a\nsuite: b\n"))


def test_malformed_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: malformed YAML"):
        load_suite(write(tmp_path, "suite: [unclosed\nmethods: x\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_suite(write(tmp_path, "- a\n- b\n"))


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = write(tmp_path, BASIC)
    suite = load_suite(path, overrides=["methods.strong.options.score=12.5", "defaults.seed=3"])
    assert suite.methods[1].options["score"] == 12.5 and suite.defaults["seed"] == 3
    # a method given as a plain string can still be addressed by name
    suite = load_suite(path, overrides=["methods.double-echo.options.score=1"])
    assert suite.methods[0].options["score"] == 1
    with pytest.raises(ConfigError, match=r"options \(set by --set methods.strong.options=5\): must be a mapping"):
        load_suite(path, overrides=["methods.strong.options=5"])
    with pytest.raises(ConfigError, match=r"has no entry named 'weak'. Known: double-echo, strong"):
        load_suite(path, overrides=["methods.weak.options.score=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_suite(path, overrides=["methods.strong"])
    with pytest.raises(ConfigError, match=r"set by --set bogus=1.*unknown key 'bogus'"):
        load_suite(path, overrides=["bogus=1"])


def test_include_one_level(tmp_path):
    write(tmp_path, BASIC, "base.yaml")
    child = write(tmp_path, "include: base.yaml\nsuite: child\ndefaults: {offset: 1}\nmethods: [{name: strong, method: double-echo}]\n"
                            "profiles: {smoke: {defaults.seed: 9}}\n", "child.yaml")
    suite = load_suite(child, profile="smoke")
    assert suite.name == "child"
    assert [m.name for m in suite.methods] == ["strong"]  # lists replace
    assert dict(suite.defaults) == {"seed": 9, "offset": 1}  # mappings merge, then the profile applies
    assert [b.name for b in suite.benchmarks] == ["coco-stuff", "voc"]
    write(tmp_path, "include: base.yaml\nsuite: mid\n", "mid.yaml")
    nested = write(tmp_path, "include: mid.yaml\nsuite: top\n", "top.yaml")
    with pytest.raises(ConfigError, match="includes may not be nested"):
        load_suite(nested)


def test_threads_from_the_suite_a_profile_or_the_command_line(tmp_path, monkeypatch):
    import torch

    from harness.__main__ import main

    path = tmp_path / "s.yaml"
    # random CLIP weights: a dry-run runs the run's preflight, which would stop on missing pretrained ones offline
    path.write_text("suite: s\nmethods: [{name: deop, method: deop, options: {clip_weights: random}}]\n"
                    "profiles: {one: {threads: 1}, bad: {threads: 0}}\n"
                    "benchmarks:\n  - {name: coco, task: segmentation, dataset: synthetic_coco}\n")
    assert load_suite(path).threads is None and load_suite(path, profile="one").threads == 1
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        load_suite(path, profile="bad")
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    args = ["run", str(path), "--dry-run", "--out", str(tmp_path / "runs")]
    assert main([*args, "--profile", "one"]) == 0 and calls == [1]
    assert main([*args, "--profile", "one", "--threads", "2"]) == 0 and calls == [1, 2]
    assert main(args) == 0 and calls == [1, 2]  # no threads asked for: torch's default stays
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing
