"""Step progress for work whose steps differ in cost (issue 28: the speed task's groups).

A group of speed cells is timed together: building each method, warming each up, the timed rounds, the
instrumented passes and the FLOP counts take seconds to minutes each, so neither a count of finished cells nor
tqdm's rate (elapsed / steps done) says how long is left. `StepProgress` knows the plan (how many steps of each
kind), times every step as it runs, and estimates what is left from the measured median of the finished steps
of the same kind (the median: one step with a one-off cost, such as the first method's warm-up encoding the
text embeddings every later method shares, does not stretch the estimate of all the others); a kind with none finished yet is estimated from a declared proxy (a timed round costs about the
warm-ups of every method; an instrumented pass about a round), and while some remaining kind has neither, the
ETA is unknown (None): never a guess from the count of steps. The measured totals per kind (`phases_s`) are
what the speed records report as where a group's time went.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager


class StepProgress:
    """Steps planned by kind; ``begin(kind, label)`` starts one (ending the one before), ``end()`` ends it.

    Args:
        plan: kind -> how many steps of it are planned (the order of display; counts may shrink with `drop`).
        proxies: kind -> (other kind, factor): before a step of `kind` has finished, one costs about `factor`
            steps of the other kind.
        clock: seconds (a fake one in tests).
        show: called after every change with this object (e.g. a tqdm bar's update).
    """

    def __init__(self, plan: Mapping[str, int], proxies: Mapping[str, tuple[str, float]] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 show: Callable[[StepProgress], None] | None = None) -> None:
        self.plan = dict(plan)
        self.proxies = dict(proxies or {})
        self.clock, self.show = clock, show
        self.durations: dict[str, list[float]] = {kind: [] for kind in self.plan}
        self.current: tuple[str, str, float] | None = None  # (kind, label, start)
        self.started = clock()

    @property
    def total(self) -> int:
        return sum(self.plan.values())

    @property
    def done(self) -> int:
        return sum(len(d) for d in self.durations.values())

    @property
    def phases_s(self) -> dict[str, float]:
        """Measured seconds per kind, over the steps finished so far."""
        return {kind: sum(d) for kind, d in self.durations.items() if d}

    @property
    def label(self) -> str:
        return self.current[1] if self.current else ""

    def begin(self, kind: str, label: str) -> None:
        if kind not in self.plan:
            raise ValueError(f"step kind {kind!r} is not in the plan {sorted(self.plan)}")
        self._close()
        self.current = (kind, label, self.clock())
        self._show()

    def end(self) -> None:
        self._close()
        self._show()

    @contextmanager
    def step(self, kind: str, label: str) -> Iterator[None]:
        self.begin(kind, label)
        try:
            yield
        finally:
            self.end()

    def drop(self, kind: str) -> None:
        """The steps of ``kind`` not finished yet will not run (e.g. rounds cut by a time budget)."""
        self._close()
        self.plan[kind] = len(self.durations[kind])
        self._show()

    def replan(self, kind: str, count: int) -> None:
        """``count`` steps of ``kind`` are planned in all (known only once earlier steps ran)."""
        self.plan[kind] = max(count, len(self.durations[kind]))
        self._show()

    def estimate_s(self, kind: str, _seen: frozenset[str] = frozenset()) -> float | None:
        """Seconds one step of ``kind`` is expected to take: the median of its finished steps, else its
        proxy's."""
        finished = self.durations[kind]
        if finished:
            return statistics.median(finished)
        if kind in self.proxies and kind not in _seen:
            other, factor = self.proxies[kind]
            base = self.estimate_s(other, _seen | {kind})
            return None if base is None else factor * base
        return None

    def eta_s(self) -> float | None:
        """Seconds left: every step not finished at its kind's estimate, the running one less its elapsed time
        (never below 0); None while a remaining step's kind has no estimate."""
        left = 0.0
        for kind, planned in self.plan.items():
            remaining = planned - len(self.durations[kind])
            if remaining <= 0:
                continue
            estimate = self.estimate_s(kind)
            if estimate is None:
                return None
            left += remaining * estimate
            if self.current is not None and self.current[0] == kind:
                left -= min(estimate, self.clock() - self.current[2])
        return left

    def _close(self) -> None:
        if self.current is not None:
            kind, _, start = self.current
            self.durations[kind].append(self.clock() - start)
            self.current = None

    def _show(self) -> None:
        if self.show is not None:
            self.show(self)


def format_seconds(seconds: float | None) -> str:
    """``1:02:03`` / ``4:05`` for an ETA, ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def tqdm_display(desc: str, position: int = 1) -> tuple[Callable[[StepProgress], None], Callable[[], None]]:
    """A tqdm bar of a `StepProgress` (steps, the running step, its ETA) and a function that closes it."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, position=position, leave=False, unit="step",
               bar_format="{desc}: {n_fmt}/{total_fmt} steps |{bar}| {elapsed} elapsed{postfix}")

    def show(progress: StepProgress) -> None:
        bar.total = progress.total
        bar.n = progress.done
        label = f"; {progress.label}" if progress.label else ""  # between steps: none running
        bar.set_postfix_str(f"ETA {format_seconds(progress.eta_s())}{label}", refresh=False)
        bar.refresh()

    return show, bar.close
