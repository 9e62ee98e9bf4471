"""StepProgress (issue 28) on a fake clock: the ETA comes from the measured steps of each kind (or a declared
proxy), never from dividing the elapsed time by a count of steps."""

from __future__ import annotations

import pytest

from harness.progress import StepProgress, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def group_progress(clock, shown=None):
    # Two methods: 2 builds, 2 warm-ups, 3 rounds, 2 passes, 2 FLOP counts (a speed group's plan).
    return StepProgress({"build": 2, "warm-up": 2, "round": 3, "pass": 2, "flops": 2},
                        proxies={"round": ("warm-up", 2), "pass": ("round", 1), "flops": ("warm-up", 1)},
                        clock=clock, show=shown.append if shown is not None else None)


def test_eta_is_unknown_until_every_remaining_kind_has_an_estimate():
    clock = FakeClock()
    progress = group_progress(clock)
    assert progress.eta_s() is None  # nothing measured
    progress.begin("build", "build clip")
    clock.advance(4)
    progress.begin("build", "build naclip")  # ends the first build: 4 s
    clock.advance(6)
    progress.begin("warm-up", "warm up clip")  # builds 4 s and 6 s
    assert progress.eta_s() is None  # warm-up (and through it rounds, passes, FLOPs) has no estimate yet
    clock.advance(30)
    progress.begin("warm-up", "warm up naclip")
    # warm-up 30 s measured, the running one 0 s in: 1 warm-up (30) + 3 rounds (2 * 30 each) + 2 passes (60
    # each, through the round) + 2 FLOP counts (30 each)
    assert progress.eta_s() == pytest.approx(30 + 3 * 60 + 2 * 60 + 2 * 30)
    clock.advance(10)  # 10 s into the second warm-up: 20 s of its estimate left
    assert progress.eta_s() == pytest.approx(20 + 3 * 60 + 2 * 60 + 2 * 30)
    assert progress.phases_s == {"build": 10, "warm-up": 30}


def test_measured_steps_replace_the_proxies_and_a_slow_step_never_makes_the_eta_negative():
    clock = FakeClock()
    shown = []
    progress = group_progress(clock, shown)
    for kind, label, seconds in [("build", "b1", 1), ("build", "b2", 1), ("warm-up", "w1", 10),
                                 ("warm-up", "w2", 20), ("round", "round 1", 90)]:
        progress.begin(kind, label)
        clock.advance(seconds)
    progress.end()
    assert progress.done == 5 and progress.total == 11
    # rounds now from the measured round (90 s, not 2 x 15 s); passes through it; FLOPs from the warm-ups
    assert progress.eta_s() == pytest.approx(2 * 90 + 2 * 90 + 2 * 15)
    progress.begin("round", "round 2")
    clock.advance(500)  # far past its estimate: the running step counts 0 s left, not negative
    assert progress.eta_s() == pytest.approx(1 * 90 + 2 * 90 + 2 * 15)
    assert len(shown) == 7 and shown[-1] is progress  # every begin/end is shown


def test_a_budget_cut_drops_the_rounds_not_run():
    clock = FakeClock()
    progress = group_progress(clock)
    for kind, seconds in [("build", 1), ("build", 1), ("warm-up", 5), ("warm-up", 5), ("round", 12)]:
        progress.begin(kind, kind)
        clock.advance(seconds)
    progress.drop("round")  # the budget ran out after one round
    assert progress.total == 9 and progress.done == 5
    assert progress.eta_s() == pytest.approx(2 * 12 + 2 * 5)
    with progress.step("pass", "instrumented pass 1"):
        clock.advance(7)
    assert progress.phases_s == {"build": 2, "warm-up": 10, "round": 12, "pass": 7}
    assert progress.eta_s() == pytest.approx(7 + 2 * 5)


def test_one_slow_step_does_not_stretch_the_estimate_of_its_kind():
    # The first training-free method's warm-up also encodes the text the others reuse: 600 s against 10-12 s.
    clock = FakeClock()
    progress = StepProgress({"warm-up": 4, "round": 2}, proxies={"round": ("warm-up", 4)}, clock=clock)
    for seconds in (10, 600, 12):
        progress.begin("warm-up", "w")
        clock.advance(seconds)
    progress.end()
    assert progress.estimate_s("warm-up") == 12  # the median of 10, 600, 12
    assert progress.eta_s() == pytest.approx(12 + 2 * 4 * 12)


def test_unknown_kind_and_seconds_format():
    progress = StepProgress({"round": 1}, clock=FakeClock())
    with pytest.raises(ValueError, match="not in the plan"):
        progress.begin("warm-up", "x")
    assert [format_seconds(s) for s in (None, 5, 65.4, 3725)] == ["?", "0:05", "1:05", "1:02:05"]
