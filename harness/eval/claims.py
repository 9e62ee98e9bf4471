"""Paired claims: a reference check "A over B" (a ratio between two cells) is also judged by a paired bootstrap of
the difference A - B over the same images (`harness.eval.bootstrap`). The verdict is "holds" (the interval lies on
the claimed side of 0), "fails" (wholly on the other side) or "not significant at 95%"; a check with
``significance: true`` passes only when the claim holds. Records without per-image evidence (earlier runs), pairs
of records on different images, and figures the evidence does not give (speed) get no verdict, and say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .bootstrap import DEFAULT_SETTINGS, BootstrapSettings, paired_difference, pairing_problem
from .metrics import DEFAULT_CONVENTION
from .per_image import HEADLINE, load_evidence


@dataclass(frozen=True)
class ClaimVerdict:
    verdict: str | None  # holds | fails | not significant at 95% | None (not assessed)
    text: str  # the interval, or why there is none

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def __str__(self) -> str:
        return f"{self.verdict}: {self.text}" if self.verdict else f"not assessed: {self.text}"


def paired_claim(record: dict[str, Any], over: dict[str, Any], metric: str, direction: str,
                 settings: BootstrapSettings = DEFAULT_SETTINGS) -> ClaimVerdict:
    """The verdict of "record's `metric` is `direction` (higher / lower) than over's" on the same images."""
    if metric not in HEADLINE:
        return ClaimVerdict(None, f"{metric} is not resampled over images (only {', '.join(HEADLINE)})")
    if direction not in ("higher", "lower"):
        return ClaimVerdict(None, f"direction {direction!r} is not a claim of one side")
    try:
        a, b = load_evidence(record), load_evidence(over)
    except (OSError, ValueError, KeyError) as exc:
        return ClaimVerdict(None, f"per-image evidence cannot be read ({exc})")
    problem = pairing_problem(a, b)
    if problem:
        return ClaimVerdict(None, problem)
    diff = paired_difference(a, b, metric, record.get("miou_convention") or DEFAULT_CONVENTION,
                             over.get("miou_convention") or DEFAULT_CONVENTION, settings)
    if diff is None:
        return ClaimVerdict(None, f"{metric} is undefined in the resamples")
    return ClaimVerdict(diff.verdict(direction), f"{diff.text()} over {a.n_images} images, "
                                                 f"{diff.resamples} paired resamples")


def claims_report(claims: list[tuple[str, str, ClaimVerdict]]) -> str:
    """The paired verdicts of a check run, one line per claim ("" when there are none)."""
    if not claims:
        return ""
    from tabulate import tabulate

    settings = DEFAULT_SETTINGS
    rows = [[name, metric, claim.verdict or "not assessed", claim.text] for name, metric, claim in claims]
    assessed = sum(1 for *_, claim in claims if claim.verdict)
    held = sum(1 for *_, claim in claims if claim.holds)
    return (f"\nPaired claims (bootstrap of the difference over the same images, {settings.resamples} resamples, "
            f"{settings.level * 100:g}% percentile interval, seed {settings.seed}): {held} of {assessed} assessed "
            f"hold significantly, {len(claims) - assessed} not assessed.\n"
            + tabulate(rows, headers=["claim", "metric", "verdict", "difference [interval]"]))
