"""Bootstrap over images: how sure a metric is, and whether one method beats another on the same images.

Resampling unit: the image (pixels of one image are not independent). Each of `resamples` draws takes n images
with replacement (multinomial counts, seeded); the resample's metric is computed from its summed per-class counts
exactly as the record's (`harness.eval.metrics`, same convention, same seen / unseen subsets). The interval is the
percentile interval of those values at `level` (default 1,000 resamples, 95%, seed 0). A paired claim draws the
*same* images for both records (same seed, same n, the same image names in the same order), so the difference's
interval accounts for images that are hard for every method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .metrics import DEFAULT_CONVENTION, iou_from_counts
from .per_image import HEADLINE, Evidence

DEFAULTS = {"resamples": 1000, "level": 0.95, "seed": 0}
METHOD = "percentile bootstrap over images"


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    @classmethod
    def from_options(cls, options: dict[str, Any] | None, where: str = "bootstrap") -> BootstrapSettings:
        """Typed and range-checked: a ConfigError names the key."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {', '.join(DEFAULTS)}.")
        resamples, level, seed = (options.get(k, DEFAULTS[k]) for k in DEFAULTS)
        if not isinstance(resamples, int) or isinstance(resamples, bool) or not 100 <= resamples <= 100_000:
            raise ConfigError(f"{where}.resamples={resamples!r} must be an integer in 100..100000.")
        if not isinstance(level, int | float) or isinstance(level, bool) or not 0.5 <= level < 1:
            raise ConfigError(f"{where}.level={level!r} must be a number in [0.5, 1).")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"{where}.seed={seed!r} must be an integer >= 0.")
        return cls(resamples, float(level), seed)


DEFAULT_SETTINGS = BootstrapSettings()


def resample_weights(n_images: int, settings: BootstrapSettings) -> np.ndarray:
    """(resamples, n_images) how often each image is drawn in each resample; rows sum to n_images."""
    rng = np.random.default_rng(settings.seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=settings.resamples)


def _mean_counted(iou: np.ndarray) -> np.ndarray:
    counted = ~np.isnan(iou)
    n = counted.sum(axis=-1)
    total = np.where(counted, iou, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1) * 100, np.nan)


def resampled_metrics(evidence: Evidence, weights: np.ndarray,
                      convention: str = DEFAULT_CONVENTION) -> dict[str, np.ndarray]:
    """Each headline metric over every resample: metric -> (resamples,) array, NaN where undefined."""
    tp, pos_gt, pos_pred = ((m.T @ weights.T).T for m in evidence.matrices())  # (resamples, classes)
    iou = iou_from_counts(tp, pos_gt, pos_pred, convention)
    gt_total = pos_gt.sum(axis=1)
    out = {"miou": _mean_counted(iou),
           "pacc": np.where(gt_total > 0, tp.sum(axis=1) / np.maximum(gt_total, 1) * 100, np.nan)}
    if evidence.unseen:
        unseen = list(evidence.unseen)
        seen = list(evidence.seen) or [i for i in range(evidence.num_classes) if i not in set(unseen)]
        s, u = _mean_counted(iou[:, seen]), _mean_counted(iou[:, unseen])
        with np.errstate(invalid="ignore", divide="ignore"):
            h = np.where((s == 0) | (u == 0), 0.0, 2 * s * u / (s + u))
        out.update(miou_seen=s, miou_unseen=u, hiou=np.where(np.isnan(s) | np.isnan(u), np.nan, h))
    return out


def percentile_interval(values: np.ndarray, level: float) -> list[float] | None:
    finite = values[~np.isnan(values)]
    if not finite.size:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def metric_intervals(evidence: Evidence, convention: str = DEFAULT_CONVENTION,
                     settings: BootstrapSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The record's ``metrics_ci``: for each headline metric, [low, high] in percent (None where every resample
    is undefined), with how it was made; ``undefined`` counts resamples without the metric (e.g. no unseen class
    drawn), which the interval leaves out."""
    out: dict[str, Any] = {"method": METHOD, "resamples": settings.resamples, "level": settings.level,
                           "seed": settings.seed, "images": evidence.n_images, "convention": convention}
    if evidence.n_images == 0:
        return out
    values = resampled_metrics(evidence, resample_weights(evidence.n_images, settings), convention)
    undefined = {}
    for metric in HEADLINE:
        if metric in values:
            out[metric] = percentile_interval(values[metric], settings.level)
            missing = int(np.isnan(values[metric]).sum())
            if missing:
                undefined[metric] = missing
    if undefined:
        out["undefined"] = undefined
    return out


@dataclass(frozen=True)
class PairedDifference:
    metric: str
    difference: float  # record's metric - over's, on all images
    low: float
    high: float
    level: float
    resamples: int

    def verdict(self, direction: str) -> str:
        """'holds' when the whole interval is on the claimed side of 0, 'fails' when it is wholly on the other,
        else 'not significant at 95%' (the level in percent)."""
        better = {"higher": self.low > 0, "lower": self.high < 0}.get(direction)
        worse = {"higher": self.high < 0, "lower": self.low > 0}.get(direction)
        if better:
            return "holds"
        if worse:
            return "fails"
        return f"not significant at {self.level * 100:g}%"

    def text(self) -> str:
        return f"{self.metric} difference {self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def pairing_problem(a: Evidence | None, b: Evidence | None) -> str | None:
    if a is None or b is None:
        return "no per-image evidence (an earlier run)"
    if a.n_images != b.n_images or not np.array_equal(a.names, b.names):
        return f"not the same images ({a.n_images} and {b.n_images}, or in another order)"
    return None


def paired_difference(a: Evidence, b: Evidence, metric: str, convention_a: str = DEFAULT_CONVENTION,
                      convention_b: str = DEFAULT_CONVENTION,
                      settings: BootstrapSettings = DEFAULT_SETTINGS) -> PairedDifference | None:
    """The difference a - b of `metric` over the same resampled images, or None where the metric is not one
    evidence gives (speed figures) or undefined everywhere. Call `pairing_problem` first."""
    if metric not in HEADLINE:
        return None
    weights = resample_weights(a.n_images, settings)
    va = resampled_metrics(a, weights, convention_a).get(metric)
    vb = resampled_metrics(b, weights, convention_b).get(metric)
    point_a = a.metrics(convention_a).get(metric)
    point_b = b.metrics(convention_b).get(metric)
    if va is None or vb is None or point_a is None or point_b is None:
        return None
    interval = percentile_interval(va - vb, settings.level)
    if interval is None or not all(math.isfinite(v) for v in interval):
        return None
    return PairedDifference(metric, point_a - point_b, interval[0], interval[1], settings.level,
                            settings.resamples)
