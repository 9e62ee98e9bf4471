"""Learning-rate schedules of the official recipes, as LambdaLR factors.

- ``poly``: detectron2 WarmupPolyLR, factor (1 - it/max_iter)^power (power 0.9; no warm-up in the recipes).
- ``cosine``: detectron2 WarmupCosineLR, factor 0.5 (1 + cos(pi it/max_iter)).
Warm-up (``constant`` as the stage-1 prompt recipe, or ``linear``) multiplies the first ``warmup_iters``.
"""

from __future__ import annotations

import math


def lr_factor(step: int, max_iters: int, schedule: str = "poly", power: float = 0.9, warmup_iters: int = 0,
              warmup_factor: float = 1.0, warmup_method: str = "constant") -> float:
    if schedule == "poly":
        factor = (1.0 - step / max_iters) ** power if step < max_iters else 0.0
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(step, max_iters) / max_iters))
    elif schedule == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown schedule {schedule!r}; use poly, cosine or constant")
    if step < warmup_iters:
        if warmup_method == "constant":
            factor *= warmup_factor
        else:  # linear
            alpha = step / warmup_iters
            factor *= warmup_factor * (1 - alpha) + alpha
    return factor
