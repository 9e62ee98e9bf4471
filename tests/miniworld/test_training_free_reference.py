"""The training-free family on MiniWorld (issue 15): the CI reference covers every accuracy cell of the suite's
`miniworld` profile, the committed runs of data seeds 0 and 1 both hold it, a clean run reproduces it, and a
deliberately broken rule (SCLIP's last block computed as vanilla q k^T attention) fails it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.check import evaluate, load_reference
from harness.results import load_records
from harness.runner import plan
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "training_free.yaml"
REFERENCE = ROOT / "results" / "reference" / "training-free-miniworld-cpu.yaml"
RECORDS = ROOT / "results" / "miniworld" / "records" / "training_free"
PUBLISHED_PAIRS = {("maskclip", "clip"), ("sclip", "maskclip"), ("clearclip", "maskclip"), ("naclip", "maskclip")}


def _method(cell_id: str) -> str:
    return cell_id.rsplit("/", 1)[1]


def test_reference_covers_every_accuracy_cell_and_only_published_orderings():
    _, checks = load_reference(REFERENCE)
    cells = {c.id for c in plan(load_suite(SUITE, profile="miniworld")) if c.benchmark.task == "segmentation"}
    assert {c.cell for c in checks if not c.over} == cells and len(cells) == 10
    claims = [c for c in checks if c.over]
    assert len(claims) >= 6 and all(c.note and c.over in cells for c in claims)
    assert all(c.value - c.tolerance > 1.0 for c in claims)  # each says "the first beats the second"
    assert {(_method(c.cell), _method(c.over)) for c in claims} == PUBLISHED_PAIRS


@pytest.mark.parametrize("seed", [0, 1])
def test_committed_records_of_both_seeds_hold_the_reference(seed):
    records = load_records(RECORDS / f"seed{seed}")
    segmentation = [r for r in records if r["benchmark"] != "speed"]
    assert len(segmentation) == 10 and {r["env"]["threads"] for r in records} == {1}
    assert {r["task_options"]["synthetic"]["seed"] for r in segmentation} == {seed}
    _, checks = load_reference(REFERENCE)
    outcomes = evaluate(records, checks)
    assert all(o.passed for o in outcomes), [(o.check.name, o.reason) for o in outcomes if not o.passed]
    if seed == 0:  # the run the reference figures come from
        assert all(abs(o.measured - o.check.value) < 1e-3 for o in outcomes)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """A clean run (fresh data root: MiniWorld-BG drawn from seed 0) of two methods with background, ~10 s each."""
    from harness.__main__ import main

    tmp = tmp_path_factory.mktemp("tf")

    def run(out: str, only: str, *extra: str) -> list[dict]:
        args = ["run", str(SUITE), "--profile", "miniworld", "--only", only, "--out", str(tmp / out),
                "--data-root", str(tmp / "data"), "--cache-dir", str(tmp / "cache"), "--no-progress", *extra]
        assert main(args) == 0
        return load_records(tmp / out)

    return run


def _checks_of(records: list[dict]):
    ran = {r["cell"] for r in records}
    _, checks = load_reference(REFERENCE)
    return [c for c in checks if c.cell in ran and (c.over is None or c.over in ran)]


@pytest.mark.slow
def test_a_clean_run_reproduces_the_reference_and_a_broken_rule_fails_it(clean_run, monkeypatch):
    monkeypatch.chdir(ROOT)  # the profile names the CLIP checkpoint and the name file relative to the repository
    records = clean_run("good", "coco-object/own/maskclip,coco-object/own/sclip")
    checks = _checks_of(records)
    assert len(checks) == 5  # 2 methods x (mIoU, pAcc) + the claim MaskCLIP < SCLIP
    outcomes = evaluate(records, checks)
    assert all(o.passed and abs(o.measured - o.check.value) < 1e-3 for o in outcomes if not o.check.over)
    assert all(o.passed for o in outcomes)

    # SCLIP with vanilla q k^T in its last block instead of qq+kk, beside the good run's MaskCLIP
    (sclip,) = clean_run("broken", "coco-object/own/sclip", "--set", "methods.sclip.options.attention=qk")
    assert sclip["method_spec"]["attention"] == "qk"
    broken = [sclip, *(r for r in records if r["method"] == "maskclip")]
    failed = {(o.check.cell, o.check.over, o.check.metric) for o in evaluate(broken, checks) if not o.passed}
    assert ("coco-object/own/sclip", "coco-object/own/maskclip", "miou") in failed  # MaskCLIP < SCLIP is gone
    assert ("coco-object/own/sclip", None, "miou") in failed  # and its band


def test_speed_accuracy_plot_of_the_committed_run(tmp_path):
    from harness.viz.plots import speed_accuracy_plot

    points = speed_accuracy_plot(load_records(RECORDS / "seed0"), tmp_path / "fps_miou.png", y="miou")
    assert (tmp_path / "fps_miou.png").stat().st_size > 0
    # five methods x two accuracy benchmarks, each paired with the method's speed cell of the same run
    assert len(points) == 10 and {p.speed_benchmark for p in points} == {"speed"}
    sclip = {p.accuracy_benchmark: p.y for p in points if p.method == "sclip"}
    assert abs(sclip["coco-object"] - 20.937) < 1e-3 and abs(sclip["coco-stuff"] - 33.905) < 1e-3
