"""Issue 13's acceptance test: a plugin package that lives only under tests/ (tests/plugin_example), registered
through HARNESS_PLUGINS, adds (a) a new attention rule used by the one-pass pipeline and (b) a method with a
proposal-free pipeline of its own; both run through the segmentation task and the speed task (breakdown and
GMAC included) with no edit to harness/. Everything runs in a subprocess, as a user's `harness run` would, so
the package's registrations never leak into the other tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

SUITE = """
suite: plugin-example
threads: 1
defaults: {seed: 0}
methods:
  - name: keys
    method: test-onepass-keys
    options: {clip_arch: tiny-vit-p16, clip_weights: random, test_short_side: 64, proposals: {preset: smoke}}
  - {name: probe, method: test-patch-probe}
benchmarks:
  - name: seg
    task: segmentation
    dataset: synthetic_coco
    options:
      max_images: 3
      synthetic: {n_train: 8, n_val: 3, size: 64}
      train:
        prompts: {iters: 2, batch_size: 4}
        proposals: {iters: 2, batch_size: 2, crop: 64, min_sizes: [64], max_size: 160, checkpoint_every: 1000}
  - name: speed
    task: speed
    options: {images: 1, image_sizes: [[64, 96]], repeats: 1, budget_s: 5, classes: synthetic_coco}
"""

RULE_CHECK = """
import torch
from torch import nn
from methods.components.attention_rules import ATTENTION_RULES, apply_attention
import plugin_example  # registers through its import, as HARNESS_PLUGINS does
rule = ATTENTION_RULES["test-self-keys"]()
torch.manual_seed(0)
attn, x = nn.MultiheadAttention(16, 2, batch_first=True), torch.randn(5, 16)
torch.testing.assert_close(rule.mix(x[None], attn, None)[0], apply_attention(attn, x, rule.attention(x, attn, None)))
print("rule ok")
"""


def _env() -> dict[str, str]:
    return {**os.environ, "HARNESS_PLUGINS": "plugin_example", "PYTHONPATH": f"{REPO}{os.pathsep}{TESTS}",
            "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("plugin_example")
    (tmp / "suite.yaml").write_text(SUITE)
    done = _harness("run", str(tmp / "suite.yaml"), "--out", str(tmp / "out"), "--cache-dir", str(tmp / "cache"),
                    "--data-root", str(tmp / "data"), "--device", "cpu", "--no-progress", cwd=tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp / "out"


def _record(run_dir: Path, benchmark: str, method: str) -> dict:
    record = json.loads((run_dir / benchmark / "default" / f"{method}.json").read_text())
    assert record["status"] == "ok", record.get("error")
    return record


@pytest.mark.parametrize("method", ["keys", "probe"])
def test_both_methods_are_evaluated_by_the_segmentation_task(run_dir, method):
    record = _record(run_dir, "seg", method)
    metrics = record["metrics"]
    assert 0.0 <= metrics["hiou"] <= 100.0 and 0.0 <= metrics["pacc"] <= 100.0
    assert record["eval_images"] == 3  # a task's extra fields sit at the top level of the record
    if method == "probe":  # its per-image counts reach the record through Segmenter.counts, by their own name
        assert record["windows_per_image_mean"] == 1.0
    else:
        assert set(record["stages"]) == {"prompts", "proposals"}  # trained by the shared stages


@pytest.mark.parametrize("method", ["keys", "probe"])
def test_both_methods_are_timed_with_breakdown_and_gmac(run_dir, method):
    speed = _record(run_dir, "speed", method)["speed"]
    assert speed["fps"] > 0 and speed["gmac"] > 0
    assert speed["stage_gmac"]["clip"] > 0 and speed["stages_ms"]["clip"] > 0
    proposals = method == "keys"
    assert speed["prepared"] == {"channels_last": ["maskformer"] if proposals else [], "compiled": [],
                                 "precision": "fp32", **({"folded_norms": {"maskformer": 15}} if proposals else {})}  # resnet10t: 3 + 4 x 3
    if method == "probe":
        assert set(speed["stages_ms"]) == {"text", "preprocess", "clip", "head"}
        assert speed["windows_per_image"] == [1]


def test_listing_shows_the_plugins_kind_description_and_rule(tmp_path):
    methods = _harness("list", "methods", cwd=tmp_path)
    assert methods.returncode == 0, methods.stderr
    lines = {line.split()[0]: line for line in methods.stdout.splitlines()[1:]}
    assert "proposal-free" in lines["test-patch-probe"] and "no proposals" in lines["test-patch-probe"]
    assert "one-pass" in lines["test-onepass-keys"]
    rules = _harness("list", "rules", cwd=tmp_path)
    assert "test-self-keys" in rules.stdout and "K K^T" in rules.stdout


def test_the_new_rule_mixes_with_its_own_explicit_matrix(tmp_path):
    done = subprocess.run([sys.executable, "-c", RULE_CHECK], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "rule ok" in done.stdout, done.stderr[-3000:]
