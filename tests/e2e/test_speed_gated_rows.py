"""Issue 23's rows in suites/speed.yaml: timed on a GPU by default (the CPU job keeps its length), opt-in on a CPU,
never at ViT-L/14-336 where no variant is published; their DINO/DINOv2 stage counted on its own."""

from __future__ import annotations

import json

import pytest

from harness.__main__ import main
from harness.results import load_records
from harness.suite import load_suite

NEXT_ROWS = ("scclip", "lposs", "lposs+", "talk2dino")


def test_the_gates_name_rows_of_the_suite():
    for profile in ("paper", "smoke", "quick", "miniworld", "throughput-smoke"):
        suite = load_suite("suites/speed.yaml", profile=profile)
        rows = {m.name for m in suite.methods}
        for bench in suite.benchmarks:
            gated = set(bench.options.get("gpu_only_rows", ())) | set(bench.options.get("skip_rows", ()))
            assert gated <= rows, (profile, bench.name)
            if set(NEXT_ROWS) <= rows and bench.options.get("cpu", True):  # a CPU runs this benchmark
                assert set(NEXT_ROWS) <= set(bench.options.get("gpu_only_rows", ())), (profile, bench.name)
    assert not set(NEXT_ROWS) & {m.name for m in load_suite("suites/speed.yaml", profile="gpu-check").methods}
    assert [m.name for m in load_suite("suites/speed.yaml", profile="regress").methods] == [
        "simbaseline", "baseline", "deop"]


def test_new_rows_are_not_run_on_a_cpu_by_default(tmp_path, capsys):
    out = tmp_path / "speed"
    code = main(["run", "suites/speed.yaml", "--out", str(out), "--no-progress", "--device", "cpu",
                 "--only", "vit-b16/matched/lposs,vit-l14-336/matched/talk2dino"])
    assert code == 0
    assert "2 not run here" in capsys.readouterr().out
    rec = json.loads((out / "vit-b16" / "matched" / "lposs.json").read_text())
    assert rec["status"] == "skipped"
    assert "opt in with --set benchmarks.vit-b16.options.gpu_only_rows=[]" in rec["error"]
    rec = json.loads((out / "vit-l14-336" / "matched" / "talk2dino.json").read_text())
    assert "skip_rows" in rec["error"]


@pytest.mark.parametrize("bad", ["lposs", "[1, 2]"])
def test_gate_lists_are_checked(tmp_path, bad):
    code = main(["run", "suites/speed.yaml", "--out", str(tmp_path), "--dry-run", "--device", "cpu",
                 "--set", f"benchmarks.vit-b16.options.gpu_only_rows={bad}"])
    assert code == 2


def test_opted_in_on_a_cpu_the_new_rows_time_their_dino_stage(tmp_path):
    out = tmp_path / "speed"
    only = ",".join(f"vit-b16/matched/{m}" for m in ("maskclip", "lposs", "talk2dino"))
    code = main(["run", "suites/speed.yaml", "--profile", "smoke", "--out", str(out), "--no-progress", "--only", only,
                 "--set", "benchmarks.vit-b16.options.gpu_only_rows=[]",
                 "--set", "benchmarks.vit-b16.options.repeats=1", "--set", "benchmarks.vit-b16.options.images=1",
                 "--set", "benchmarks.vit-b16.options.breakdown_passes=1"])
    assert code == 0
    records = {r["method"]: r["speed"] for r in load_records(out)}
    assert set(records) == {"maskclip", "lposs", "talk2dino"}
    lposs, t2d = records["lposs"], records["talk2dino"]
    assert {"clip", "dino", "graph", "propagation", "postprocess"} <= set(lposs["stages_ms"])
    assert lposs["stage_gmac"]["dino"] > 0 and {"dino", "head"} <= set(t2d["stages_ms"]) and t2d["stage_gmac"]["dino"] > 0
    assert all(s["gmac"] > 0 for s in records.values())
    assert records["maskclip"]["paired"]["group"] == lposs["paired"]["group"]  # timed together with the seeds
