"""Issue 22's acceptance test: the two out-of-tree examples of methods/README.md (examples/plugins/: (a) a new
attention rule with an option, (b) a proposal-based variant with another pooling), each one file plus its
pyproject.toml, installed as a pip install would (a dist-info with the pyproject's entry points, on the path; no
HARNESS_PLUGINS), and run as a user would in one process: `list parts`, `list methods`, `run --dry-run`, one
segmentation cell each on synthetic data and a speed cell each with its stage breakdown. The README shows the
files verbatim."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "plugins"

SUITE = """
suite: out-of-tree
threads: 1
defaults: {seed: 0}
methods:
  - name: blend
    method: blend-clip
    options: {clip_arch: tiny-vit-p16, clip_weights: random, short_side: 64, mode: whole, templates: single}
  - name: hard
    method: hard-pool
    options: {clip_arch: tiny-vit-p16, clip_weights: random, test_short_side: 64, proposals: {preset: smoke}}
benchmarks:
  - name: seg
    task: segmentation
    dataset: synthetic_coco
    options:
      max_images: 2
      synthetic: {n_train: 4, n_val: 2, size: 64}
      train:
        prompts: {iters: 1, batch_size: 2}
        proposals: {iters: 1, batch_size: 2, crop: 64, min_sizes: [64], max_size: 160, checkpoint_every: 1000}
  - name: speed
    task: speed
    options: {images: 1, image_sizes: [[64, 96]], repeats: 1, budget_s: 5, classes: synthetic_coco}
"""

SCRIPT = """
import sys, torch
from torch import nn
from harness.__main__ import main
suite, out = sys.argv[1], sys.argv[2]
common = ["--out", out, "--cache-dir", out + "-cache", "--data-root", out + "-data", "--device", "cpu"]
for label, args in (("list parts", ["list", "parts"]), ("list methods", ["list", "methods"]),
                    ("dry-run", ["run", suite, "--dry-run", *common]), ("run", ["run", suite, "--no-progress", *common])):
    print("=== " + label, flush=True)
    print("=== rc", main(args), flush=True)
from methods.components.attention_rules import ATTENTION_RULES, Vanilla, apply_attention
torch.manual_seed(0)
attn, x = nn.MultiheadAttention(16, 2, batch_first=True), torch.randn(5, 16)
rule = ATTENTION_RULES["qk-kk-blend"](0.3)
torch.testing.assert_close(rule.mix(x[None], attn, None)[0], apply_attention(attn, x, rule.attention(x, attn, None)))
torch.testing.assert_close(ATTENTION_RULES["qk-kk-blend"](0.0).mix(x[None], attn, None), Vanilla().mix(x[None], attn, None))
print("=== rule ok")
from harness.testing import check_plugin
tiny = {"clip_arch": "tiny-vit-p16", "clip_weights": "random"}
print("=== kit", check_plugin("blend-clip", {**tiny, "short_side": 64, "mode": "whole"}),
      check_plugin("hard-pool", {**tiny, "test_short_side": 64, "proposals": {"preset": "smoke"}}))
"""


def _install(site: Path, example: Path) -> None:
    """What pip install leaves for the entry points: a dist-info with entry_points.txt from the pyproject."""
    project = tomllib.loads((example / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
             for group, entries in project["entry-points"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines))


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("out_of_tree")
    for name in ("blend_rule", "hard_pool"):
        _install(tmp / "site", EXAMPLES / name)
    (tmp / "suite.yaml").write_text(SUITE)
    path = os.pathsep.join([str(REPO), str(tmp / "site"), str(EXAMPLES / "blend_rule"), str(EXAMPLES / "hard_pool")])
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}
    env.update(PYTHONPATH=path, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp / "suite.yaml"), str(tmp / "out")], cwd=tmp,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp / "out", done.stdout


def _section(stdout: str, title: str) -> str:
    text = stdout.split(f"=== {title}\n", 1)[1].split("=== rc", 1)
    assert text[1].startswith(" 0"), f"{title} exited with {text[1][:4]}"
    return text[0]


def _record(out: Path, benchmark: str, method: str) -> dict:
    record = json.loads((out / benchmark / "default" / f"{method}.json").read_text())
    assert record["status"] == "ok", record.get("error")
    return record


def test_listed_with_their_parts_and_options(session):
    _, stdout = session
    parts = _section(stdout, "list parts")
    assert "qk-kk-blend" in parts and "blend: a number = 0.5  weight of the key-key attention (>= 0; <= 1)" in parts
    assert "hard-mask" in parts and "pool_threshold: a number = 0.5" in parts
    methods = _section(stdout, "list methods")
    assert "blend-clip" in methods and "training-free" in methods and "hard-pool" in methods
    assert "broken plugins" not in stdout
    dry = _section(stdout, "dry-run")  # the dry-run ran the run's preflight and listed the cells
    assert "seg/default/blend" in dry and "4 cells" in dry
    assert "=== rule ok" in stdout  # the rule's fast path equals its explicit matrix; blend 0 is CLIP's own
    checks = "['protocol', 'listing', 'options', 'dry-run', 'predict', 'timing']"
    assert f"=== kit {checks} {checks}" in stdout  # harness.testing.check_plugin passes on both


def test_one_segmentation_cell_each_with_their_options_recorded(session):
    out, _ = session
    blend, hard = _record(out, "seg", "blend"), _record(out, "seg", "hard")
    for record in (blend, hard):
        assert 0.0 <= record["metrics"]["miou"] <= 100.0
    assert blend["method_spec"]["attention"] == "qk-kk-blend" and blend["method_spec"]["extra_options"] == {
        "blend": 0.3}
    assert hard["method_spec"]["pooling"] == "hard-mask"
    assert hard["method_spec"]["extra_options"] == {"pool_threshold": 0.4}


def test_a_speed_cell_each_with_its_stage_breakdown(session):
    out, _ = session
    for method, stages in (("blend", {"clip", "text"}), ("hard", {"proposals", "clip", "head"})):
        speed = _record(out, "speed", method)["speed"]
        assert speed["fps"] > 0 and stages <= set(speed["stages_ms"]) and speed["stages_ms"]["clip"] > 0


def test_the_readme_shows_the_examples_verbatim():
    readme = (REPO / "methods" / "README.md").read_text()
    for name in ("blend_rule/blend_rule.py", "blend_rule/pyproject.toml", "hard_pool/hard_pool.py"):
        assert (EXAMPLES / name).read_text().strip() in readme, f"methods/README.md does not show {name} as it is"
