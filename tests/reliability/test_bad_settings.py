"""Sweep items 2, 3 and 5 (configuration): numbers in scientific notation, training settings with types and
ranges, nested method options, merged overrides, profile typos, class names that differ only in case. Each is
checked by ``run --dry-run``, i.e. before anything trains."""

import pytest

from harness.data.info import DatasetInfo, Layout, SplitLayout
from harness.errors import DataError
from harness.suite import load_suite

SMOKE = "suites/smoke.yaml"
PROFILES = str((__import__("pathlib").Path("suites") / "_profiles.yaml").resolve())


@pytest.mark.parametrize("override, value", [
    ("defaults.train.prompts.lr=1e-3", 0.001),
    ("defaults.train.head.lr=5E-4", 0.0005),
    ("defaults.train.proposals.weight_decay=1.5e+2", 150.0),
    ("defaults.train.proposals.lr=.5e-3", 0.0005),
])
def test_scientific_notation_is_a_number_in_set(cli, override, value):
    code, out, err = cli("run", SMOKE, "--dry-run", "--set", override)
    assert code == 0, err
    stage, key = override.split("=")[0].split(".")[2:]
    assert load_suite(SMOKE, overrides=[override]).defaults["train"][stage][key] == value


def test_scientific_notation_is_a_number_in_a_suite_file(tmp_path, cli):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"suite: s\ninclude: {PROFILES}\ndefault_profile: smoke\nmethods: [deop]\n"
                     "benchmarks: [{name: coco-stuff, task: segmentation, dataset: synthetic_coco}]\n"
                     "defaults: {train: {prompts: {lr: 5e-3}, head: {lr: 2e-4}}}\n")
    assert cli("run", suite, "--dry-run")[0] == 0
    train = load_suite(suite).defaults["train"]
    assert train["prompts"]["lr"] == 0.005 and train["head"]["lr"] == 0.0002


def test_a_profiles_defaults_train_merges_with_the_suite_files(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"suite: s\ninclude: {PROFILES}\ndefault_profile: smoke\nmethods: [deop]\n"
                     "benchmarks: [{name: coco-stuff, task: segmentation, dataset: synthetic_coco}]\n"
                     "defaults: {train: {prompts: {lr: 5e-3}, head: {iters: 7}}}\n")
    train = load_suite(suite).defaults["train"]
    # the file's settings survive the profile's defaults.train; the profile's others are there too
    assert train["prompts"] == {"iters": 30, "batch_size": 16, "lr": 0.005}
    assert train["head"]["iters"] == 30 and train["head"]["crop"] == 64  # the profile (applied later) wins
    assert train["proposals"]["iters"] == 60
    # --set comes last and merges the same way
    train = load_suite(suite, overrides=["defaults.train.head={iters: 9}"]).defaults["train"]
    assert train["head"]["iters"] == 9 and train["head"]["crop"] == 64 and train["prompts"]["lr"] == 0.005


@pytest.mark.parametrize("override, words", [
    ("defaults.train.prompts.iters=-5", "train.prompts.iters must be an integer >= 1, got -5"),
    ("defaults.train.prompts.iters=0", "train.prompts.iters must be an integer >= 1, got 0"),
    ("defaults.train.head.batch_size=0", "train.head.batch_size must be an integer >= 1, got 0"),
    ("defaults.train.head.iters=2.5", "train.head.iters must be an integer"),
    ("defaults.train.prompts.lr='1e-3'", "train.prompts.lr must be a number > 0, got '1e-3' (a string)"),
    ("defaults.train.prompts.lr=-0.1", "train.prompts.lr must be a number > 0"),
    ("defaults.train.prompts.lr=.nan", "train.prompts.lr must be a number > 0"),
    ("defaults.train.proposals.momentum=1.0", "train.proposals.momentum must be a number >= 0 < 1"),
    ("defaults.train.proposals.optimizer=adam", "train.proposals.optimizer must be one of adamw, sgd"),
    ("defaults.train.proposals.amp=fp8", "train.proposals.amp must be one of bf16, fp16 or null"),
    ("defaults.train.proposals.min_sizes=[]", "train.proposals.min_sizes must be a non-empty list of integers"),
    ("defaults.train.proposals.lr_multipliers={backbone: x}", "train.proposals.lr_multipliers must be a mapping"),
    ("defaults.train.head.crop=0", "train.head.crop must be an integer >= 1"),
    ("defaults.train.head.foo=1", "train.head: unknown setting 'foo'"),
    ("defaults.train.head.seed=1", "the seed is defaults.seed"),
    ("defaults.train.heads={iters: 1}", "train: unknown stage(s) ['heads']"),
    ("defaults.train.head=3", "train.head must be a mapping"),
    ("settings.default.method_options.proposals={preset: smoke, foo: 1}", "option proposals: unknown key 'foo'"),
    ("settings.default.method_options.proposals={preset: large}", "proposals.preset='large' is not one of smoke"),
    ("settings.default.method_options.proposals={preset: smoke, hidden: big}", "option proposals.hidden='big'"),
    ("settings.default.method_options.proposals={preset: smoke, hidden: 30}", "must be divisible by nheads"),
    ("settings.default.method_options.proposals=smoke", "option proposals must be a mapping"),
])
def test_bad_training_and_nested_settings_fail_the_dry_run_with_the_key_named(cli, override, words):
    code, out, err = cli("run", SMOKE, "--dry-run", "--set", override)
    assert code == 2 and words in err, err
    assert "Traceback" not in err


def test_every_training_setting_of_the_loop_is_in_the_schema():
    from dataclasses import fields

    from harness.train.loop import TrainConfig
    from harness.train.settings import TRAIN_SETTINGS
    from methods.stages.common import STAGE_EXTRA_KEYS

    assert set(TRAIN_SETTINGS) == {f.name for f in fields(TrainConfig)} - {"seed"} | STAGE_EXTRA_KEYS


def test_a_profile_typo_lists_each_profile_once_with_a_hint(cli):
    code, _, err = cli("run", SMOKE, "--dry-run", "--profile", "smok")
    assert code == 2 and "Did you mean 'smoke'?" in err
    assert err.count("paper") == 1


def test_class_names_that_differ_only_in_case_are_rejected():
    with pytest.raises(DataError, match=r"duplicate class names \['Car', 'car'\].*lowercases"):
        DatasetInfo(name="mine", title="mine", class_names=("Car", "car", "road"), raw_format=None,
                    layout=Layout(val=SplitLayout("m/i", "m/l")))


def test_a_bad_training_setting_stops_a_real_run_before_any_record(cli, tmp_path):
    code, out, err = cli("run", SMOKE, "--out", tmp_path / "runs", "--data-root", tmp_path / "data",
                         "--cache-dir", tmp_path / "cache", "--no-progress", "--set", "defaults.train.prompts.iters=-5")
    assert code == 2 and "train.prompts.iters must be an integer >= 1, got -5" in err
    assert not list(tmp_path.rglob("*.json")) and not (tmp_path / "cache").exists()
