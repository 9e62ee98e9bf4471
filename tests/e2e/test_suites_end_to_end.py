"""The real suites, tasks and methods end to end on synthetic data with tiny models (a few training steps)."""

import json

import numpy as np
import pytest

from harness.__main__ import main
from harness.errors import ConfigError
from harness.eval.metrics import compute_metrics
from harness.results import load_confusion, load_records
from harness.tasks import speed_group

TINY_TRAIN = ("defaults.train={prompts: {iters: 3, batch_size: 4}, proposals: {iters: 3, batch_size: 2, crop: 64, "
              "min_sizes: [64], max_size: 128}, head: {iters: 3, batch_size: 2, crop: 64, min_sizes: [64], "
              "max_size: 128}}")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    args = ["run", "suites/smoke.yaml", "--out", str(root / "runs"), "--data-root", str(root / "data"),
            "--cache-dir", str(root / "cache"), "--no-progress", "--only", "coco-stuff/*",
            "--set", TINY_TRAIN, "--set", "defaults.max_images=3",
            "--set", "defaults.synthetic={n_train: 8, n_val: 4, size: 64}"]
    code = main(args)
    return code, root


def test_smoke_suite_runs_every_method_and_writes_complete_records(smoke_run, capsys):
    code, root = smoke_run
    assert code == 0
    records = {r["method"]: r for r in load_records(root / "runs")}
    assert set(records) == {"baseline", "baseline+", "baseline+ps", "baseline+cal", "deop", "simbaseline"}
    for name, rec in records.items():
        assert rec["status"] == "ok", (name, rec["error"])
        assert {"miou", "miou_seen", "miou_unseen", "hiou", "pacc", "per_class_iou"} <= set(rec["metrics"])
        assert rec["miou_convention"] == "d2-v0.6" and rec["dataset"] == "synthetic_coco"
        assert rec["weights"]["clip"]["source"] == "random" and rec["profile"] == "smoke"
        assert rec["method_spec"]["plugin"] == name and rec["env"]["torch"]
        # the stored matrix reproduces the stored metrics
        matrix = load_confusion(rec)
        assert matrix.dtype == np.int64 and matrix.sum() > 0
        from harness.data import get_info

        info = get_info("synthetic_coco")
        again = compute_metrics(matrix, unseen=info.unseen, class_names=info.class_names)
        assert again["hiou"] == pytest.approx(rec["metrics"]["hiou"], nan_ok=True)
    # one proposal network for all, one prompt stage for all
    hashes = {r["method_spec"]["stage_hashes"].get("proposals") for r in records.values()}
    assert len(hashes) == 1
    assert len(list((root / "cache" / "proposals").iterdir())) == 1
    assert len(list((root / "cache" / "head").iterdir())) == 4  # baseline+, +ps, +cal, deop


def test_table3_layout_with_paper_numbers(smoke_run, capsys):
    _, root = smoke_run
    capsys.readouterr()
    assert main(["table", str(root / "runs"), "--paper", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Table 3: Ablation")
    assert "WARNING: random weights" in out
    assert "| DeOP (ours)" in out and "(38.2," in out  # the paper's COCO hIoU beside ours
    assert "| simbaseline" in out  # measured rows outside the paper's table are appended


def test_rerun_resumes_without_recomputing(smoke_run, capsys):
    _, root = smoke_run
    capsys.readouterr()
    args = ["run", "suites/smoke.yaml", "--out", str(root / "runs"), "--data-root", str(root / "data"),
            "--cache-dir", str(root / "cache"), "--no-progress", "--only", "coco-stuff/*",
            "--set", TINY_TRAIN, "--set", "defaults.max_images=3",
            "--set", "defaults.synthetic={n_train: 8, n_val: 4, size: 64}"]
    assert main(args) == 0
    assert "6 skipped (already recorded)" in capsys.readouterr().out


def test_speed_suite_smoke_profile(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(speed_group, "_FLOPS_COUNTED", {})  # counted here, whatever ran before in this process
    out = tmp_path / "speed"
    code = main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--only", "vit-b16/matched/simbaseline,vit-b16/matched/deop,vit-b16/matched/naclip,"
                           "vit-b16/matched/proxyclip",
                 "--set", "benchmarks.vit-b16.options.repeats=2", "--set", "benchmarks.vit-b16.options.breakdown_passes=2"])
    assert code == 0
    records = {r["method"]: r for r in load_records(out)}
    assert len(records) == 4
    deop, sim = (records[m]["speed"] for m in ("deop", "simbaseline"))
    # timed together: one group, each record holding its paired ratio over the other, from the same 2 rounds
    assert deop["paired"]["group"] == sim["paired"]["group"] and deop["rounds"] == sim["rounds"] == 2
    ratio, inverse = deop["paired"]["fps_ratio"]["vit-b16/matched/simbaseline"], sim["paired"]["fps_ratio"][
        "vit-b16/matched/deop"]
    # Same rounds, inverted: with 2 rounds the quartiles (linear interpolation) give back the two per-round ratios,
    # and the inverse's figures must be exactly those of their reciprocals (1 / median is not: the median of two
    # reciprocals is their mean, below 1 / the mean of the two, and may fall under p25).
    lo, hi = 1.5 * ratio["p25"] - 0.5 * ratio["p75"], 1.5 * ratio["p75"] - 0.5 * ratio["p25"]
    assert ratio["rounds"] == inverse["rounds"] == 2 and ratio["median"] == pytest.approx((lo + hi) / 2)
    assert inverse["median"] == pytest.approx((1 / lo + 1 / hi) / 2, rel=1e-9)
    assert inverse["p25"] == pytest.approx(1 / hi + 0.25 * (1 / lo - 1 / hi), rel=1e-9)
    for name, rec in records.items():
        speed = rec["speed"]
        assert speed["fps"] > 0 and speed["ms_per_image"] == pytest.approx(1000 / speed["fps"])
        assert speed["batch_size"] == 1 and speed["precision"] == "fp32" and speed["text_cached"] is True
        stages = {"clip", "postprocess"} | ({"proposals", "head"} if name in ("simbaseline", "deop") else set())
        assert stages <= set(speed["stages_ms"])
        assert speed["gmac"] > 0 and 0 < speed["peak_fraction"]
        # on a CPU the stages come from the 2 timed rounds themselves: no instrumented passes, a peak sample a round
        assert speed["breakdown_in"] == "rounds" and speed["breakdown_passes"] == 2
        assert len(speed["peak_samples_tflops"]) == 2 and "inside the timed calls" in speed["stages_note"]
        assert speed["peak_tflops"] == max(speed["peak_samples_tflops"]) and isinstance(speed["flags"], dict)
        assert speed["images"].startswith("synthetic")
    assert len(records["simbaseline"]["speed"]["crops_per_image"]) == 2  # N' per image
    # where the group's time went (issue 28): each method's build, warm-up and FLOP count, the group's per kind
    group = records["deop"]["speed"]["group_phases_s"]
    # on a CPU no instrumented passes, and FLOPs counted in the warm-up calls
    assert set(group) == {"build", "warm-up", "round"}
    assert all(r["speed"]["gmac_counted"].startswith("in the warm-up call") for r in records.values())
    assert all(r["speed"]["group_phases_s"] == group for r in records.values())
    for kind in ("build", "warm-up"):
        assert group[kind] == pytest.approx(sum(r["speed"]["phases_s"][kind] for r in records.values()))
    # the timed rounds hold at least the timed calls (two images per method per round)
    assert group["round"] >= sum(r["speed"]["ms_per_image"] for r in records.values()) * 2 * 2 / 1000 * 0.5
    # training-free: CLIP windows per image (48x64 and 64x48 at short side 48, windows 32/16: 2x3 and 3x2)
    assert records["naclip"]["speed"]["windows_per_image"] == [6, 6]
    assert records["proxyclip"]["speed"]["stage_gmac"]["dino"] > 0  # DINO timed and counted on its own
    assert "x SimBaseline" in capsys.readouterr().out


def test_speed_group_shows_its_steps_with_an_eta(tmp_path, capsys):
    out = tmp_path / "speed"
    code = main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out),
                 "--only", "vit-b16/matched/clip,vit-b16/matched/maskclip",
                 "--set", "benchmarks.vit-b16.options.repeats=1", "--set", "benchmarks.vit-b16.options.breakdown_passes=1",
                 "--set", "benchmarks.vit-b16.options.breakdown_in=passes"])  # the GPU's way, asked for on a CPU
    assert code == 0
    err = capsys.readouterr().err
    # 2 builds + 2 warm-ups + 1 round + 1 pass + 2 FLOP counts; the ETA is known once a warm-up was measured
    for shown in ("0/8 steps", "build clip", "warm up maskclip", "timed round 1 of 1", "instrumented pass 1 of 1",
                  "count FLOPs of maskclip", "7/8 steps", "ETA ?; build maskclip"):
        assert shown in err, shown
    assert "ETA 0:0" in err  # once measured: seconds, never hours per cell
    assert "cells [" in err and "cell/s" not in err  # the runner's bar: no per-cell rate or ETA for a group


def test_vit_l_cells_are_not_run_on_a_cpu_by_default(tmp_path, capsys):
    out = tmp_path / "speed"
    code = main(["run", "suites/speed.yaml", "--out", str(out), "--no-progress",
                 "--only", "vit-l14-336/matched/deop", "--device", "cpu"])
    assert code == 0
    text = capsys.readouterr().out
    assert "1 not run here" in text
    rec = json.loads((out / "vit-l14-336" / "matched" / "deop.json").read_text())
    assert rec["status"] == "skipped" and "opt in with --set benchmarks.vit-l14-336.options.cpu=true" in rec["error"]


def test_speed_throughput_mode(tmp_path):
    out = tmp_path / "speed"
    code = main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--only", "vit-b16/matched/deop", "--set", "benchmarks.vit-b16.options.batch_size=3",
                 "--set", "benchmarks.vit-b16.options.mode=throughput",
                 "--set", "benchmarks.vit-b16.options.repeats=1"])
    assert code == 0
    speed = load_records(out)[0]["speed"]
    assert speed["batch_size"] == 3 and speed["mode"] == "throughput"
    assert speed["fps"] == pytest.approx(1000 / speed["ms_per_image"])


def test_speed_flops_are_counted_once_per_method_and_inputs(tmp_path, monkeypatch):
    # Issue 28: a FLOP count is a whole call. On a CPU it is the warm-up call, once the vocabulary is prepared
    # (the same per-image work as a timed call: the count equals one taken in a call of its own after the rounds);
    # the same method on the same inputs later in the process reuses it and says so; another seed counts anew.
    monkeypatch.setattr(speed_group, "_FLOPS_COUNTED", {})
    cells = "vit-b16/as-published/simbaseline,vit-b16/as-published/deop,vit-b16/as-published/naclip"

    def run(out, *extra):
        assert main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out), "--no-progress",
                     "--only", cells, "--set", "benchmarks.vit-b16.options.repeats=1", *extra]) == 0
        return {r["method"]: r["speed"] for r in load_records(out)}

    in_warmup = run(tmp_path / "a", "--set", "benchmarks.vit-b16.options.seed=7")
    again = run(tmp_path / "b", "--set", "benchmarks.vit-b16.options.seed=7")
    other = run(tmp_path / "c", "--set", "benchmarks.vit-b16.options.seed=8")
    monkeypatch.setattr(speed_group, "_FLOPS_COUNTED", {})
    own_call = run(tmp_path / "d", "--set", "benchmarks.vit-b16.options.seed=7",
                   "--set", "benchmarks.vit-b16.options.breakdown_in=passes")
    for method in ("simbaseline", "deop", "naclip"):
        assert in_warmup[method]["gmac_counted"].startswith("in the warm-up call")
        assert other[method]["gmac_counted"].startswith("in the warm-up call")
        assert own_call[method]["gmac_counted"].startswith("in a call of its own")
        assert again[method]["gmac_counted"].startswith(f"reused: counted for vit-b16/as-published/{method}")
        assert in_warmup[method]["stage_gmac"] == own_call[method]["stage_gmac"] == again[method]["stage_gmac"]
        assert "flops" not in in_warmup[method]["phases_s"] and own_call[method]["phases_s"]["flops"] > 0
    assert again["simbaseline"]["crops_per_image"] == in_warmup["simbaseline"]["crops_per_image"]


def test_speed_flops_of_a_method_without_prepare_vocabulary_get_a_call_of_their_own(tmp_path, monkeypatch):
    from methods.pipelines.dense import DenseSegmenter

    monkeypatch.setattr(speed_group, "_FLOPS_COUNTED", {})
    monkeypatch.setattr(DenseSegmenter, "prepare_vocabulary", lambda self, vocab: False)  # the protocol's default
    out = tmp_path / "speed"
    assert main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--only", "vit-b16/matched/deop,vit-b16/matched/clip",
                 "--set", "benchmarks.vit-b16.options.repeats=1"]) == 0
    speed = {r["method"]: r["speed"] for r in load_records(out)}
    assert speed["clip"]["gmac_counted"].startswith("in a call of its own") and speed["clip"]["phases_s"]["flops"] > 0
    # DeOP (built first) was counted in its warm-up: the group's one FLOP-count step is CLIP's, not DeOP's
    assert speed["deop"]["gmac_counted"].startswith("in the warm-up call") and "flops" not in speed["deop"]["phases_s"]
    assert speed["clip"]["group_phases_s"]["flops"] == pytest.approx(speed["clip"]["phases_s"]["flops"])


def test_speed_breakdown_in_is_checked():
    from harness.tasks.speed import _options

    class FakeCell:
        task_options = {"breakdown_in": "sometimes"}

    with pytest.raises(ConfigError, match="breakdown_in must be auto, rounds or passes"):
        _options(FakeCell())


def test_speed_quick_profile_keeps_stage_times_without_flop_counts(tmp_path):
    out = tmp_path / "speed"
    assert main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--only", "vit-b16/matched/clip", "--set", "benchmarks.vit-b16.options.repeats=2",
                 "--set", "benchmarks.vit-b16.options.gmac=false"]) == 0
    speed = load_records(out)[0]["speed"]
    assert speed["breakdown_in"] == "rounds" and speed["breakdown_passes"] == 2 and speed["stages_ms"]["clip"] > 0
    assert "gmac" not in speed and "peak_percent" not in speed and "flops" not in speed["group_phases_s"]
