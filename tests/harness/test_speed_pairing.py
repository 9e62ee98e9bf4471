"""The load-robust speed protocol: interleaved rounds, paired ratios, flags, and how check and tables use them."""

import time

import pytest
import torch

from harness import speed
from harness.check import Check, evaluate
from harness.tables import FLAG_MARK, Column, Layout, Row, flag_of, ratio_between, render
from harness.tasks.speed_group import flags

CPU = torch.device("cpu")


def test_rounds_interleave_methods_in_an_order_rotated_each_round():
    calls = []
    fns = [lambda x, name=name: calls.append((name, x)) for name in "abc"]
    timings, failures = speed.time_interleaved(fns, [1, 2], CPU, repeats=3)
    assert not failures
    assert calls[:6] == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("c", 2)]  # warm-up, one per input
    order = [name for name, x in calls[6::2]]  # the first input of each method's turn
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(len(t.times_s) == 6 and len(t.rounds_s) == 3 for t in timings)
    assert timings[0].rounds_s[0] == pytest.approx(sum(timings[0].times_s[:2]))


def test_a_failing_method_drops_out_and_the_others_are_still_timed():
    def broken(x):
        if x == 2:
            raise ValueError("boom")

    timings, failures = speed.time_interleaved([lambda x: None, broken], [1, 2], CPU, repeats=2)
    assert list(failures) == [1] and str(failures[1]) == "boom"
    assert len(timings[0].rounds_s) == 2 and timings[1].rounds_s == []


def test_budget_is_per_method_and_a_round_always_completes():
    timings, _ = speed.time_interleaved([lambda _: time.sleep(0.01)] * 2, [0], CPU, repeats=50, budget_s=0.005)
    assert [len(t.rounds_s) for t in timings] == [1, 1]


def test_paired_ratio_is_the_median_of_per_round_ratios_and_ignores_shared_load():
    # Round 2 ran under load that slowed both methods 3x: the paired ratio stays 4, and its spread 0.
    fast, slow = speed.Timing([1.0, 3.0, 1.0], [1.0, 3.0, 1.0]), speed.Timing([4.0, 12.0, 4.0], [4.0, 12.0, 4.0])
    assert speed.paired_ratio(fast, slow) == {"median": 4.0, "p25": 4.0, "p75": 4.0, "spread": 0.0, "rounds": 3}
    # Hand-computed: ratios 3, 2, 2 -> median 2, quartiles 2 and 2.5, spread 0.5 / 2.
    a, b = speed.Timing([], [1.0, 2.0, 1.0]), speed.Timing([], [3.0, 4.0, 2.0])
    assert speed.paired_ratio(a, b) == {"median": 2.0, "p25": 2.0, "p75": 2.5, "spread": 0.25, "rounds": 3}
    assert speed.paired_ratio(a, speed.Timing([], [])) is None


def test_relative_spread_and_summary_use_rounds():
    assert speed.relative_spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4.0 - 2.0) / 3.0)
    summary = speed.Timing([0.1, 0.3, 0.1, 0.3], [0.4, 0.4]).summary()
    assert summary["rounds"] == 2 and summary["round_spread"] == 0.0 and summary["ms_spread"] == pytest.approx(1.0)


def _result(round_spread=0.02, rounds=3, ratio_spread=0.02, stages=None, stage_spread=None, peak_spread=0.02,
            ms=100.0):
    result = {"rounds": rounds, "round_spread": round_spread, "ms_per_image": ms,
              "paired": {"fps_ratio": {"b/x/sim": {"median": 5.0, "spread": ratio_spread, "rounds": rounds}}}}
    if stages is not None:
        result.update(stages_ms=stages, stages_ms_spread=stage_spread, peak_spread=peak_spread, peak_percent=50.0)
    return result


def test_flags_name_every_figure_whose_spread_is_too_wide():
    assert flags(_result(stages={"clip": 60.0, "head": 5.0}, stage_spread={"clip": 0.05, "head": 0.9}), 0.1) == {}
    wide = flags(_result(round_spread=0.3, ratio_spread=0.2), 0.1)
    assert set(wide) == {"fps", "ms_per_image", "fps/b/x/sim"} and "30% > 10%" in wide["fps"]
    with_breakdown = flags(_result(round_spread=0.3, stages={"clip": 60.0}, stage_spread={"clip": 0.0}), 0.1)
    assert set(with_breakdown) == {"fps", "ms_per_image", "peak_percent"}  # % peak divides by the round times
    stages = flags(_result(stages={"clip": 70.0, "proposals": 50.0}, stage_spread={"clip": 0.2, "proposals": 0.0},
                           peak_spread=0.4), 0.1)
    assert set(stages) == {"stages_ms.clip", "stages_ms", "peak_percent"}  # 120 ms of stages in a 100 ms image
    assert "120 ms" in stages["stages_ms"] and "40%" in stages["peak_percent"]
    assert set(flags(_result(rounds=1), 0.1)) == {"fps", "ms_per_image", "fps/b/x/sim"}


def _record(cell, fps, group=None, ratio=None, flags_=None):
    speed_ = {"fps": fps, "ms_per_image": 1000 / fps}
    if group:
        speed_["paired"] = {"group": group, "fps_ratio": ratio or {}}
    if flags_:
        speed_["flags"] = flags_
    return {"cell": cell, "status": "ok", "suite": "speed", "method": cell.split("/")[-1],
            "benchmark": cell.split("/")[0], "setting": "s", "speed": speed_, "metrics": {}, "weights": {}}


def test_check_and_tables_use_the_paired_ratio_when_both_records_were_timed_together():
    deop = _record("b/s/deop", 2.0, "g1", {"b/s/sim": {"median": 5.0, "spread": 0.3, "rounds": 3}},
                   {"fps/b/s/sim": "per-round ratios spread 30% > 10%"})
    sim = _record("b/s/sim", 0.5, "g1", {"b/s/deop": {"median": 0.2, "spread": 0.3, "rounds": 3}})
    assert ratio_between(deop, sim, "fps") == (5.0, "paired, median of 3 rounds")  # not 2.0 / 0.5 = 4
    assert ratio_between(deop, sim, "ms_per_image")[0] == pytest.approx(0.2)
    assert ratio_between(deop, sim, "fps_best") == (None, "unpaired")  # no such figure: no ratio
    other_run = _record("b/s/sim", 0.5, "g2")
    assert ratio_between(deop, other_run, "fps") == (4.0, "unpaired")
    (outcome,) = evaluate([deop, sim], [Check("b/s/deop", "fps", 4.8, 0.5, "equal", over="b/s/sim")])
    assert outcome.passed and outcome.measured == 5.0 and outcome.how.startswith("paired")
    assert flag_of(deop, "fps", sim) == "per-round ratios spread 30% > 10%" and flag_of(deop, "fps") is None
    layout = Layout("speed", "Speed", (Column("FPS", "b", "fps"), Column("x Sim", "b", "fps", relative_to="sim")),
                    (Row("DeOP", "deop"), Row("Sim", "sim")))
    text = render([deop, sim], layout)
    assert f"5.00 {FLAG_MARK}" in text and "2.00 " in text and "too wide to trust" in text and "paired" in text
