"""Evaluation: one confusion matrix over all classes, and every metric derived from it (METHOD_SPEC §11)."""

from __future__ import annotations

from .metrics import CONVENTIONS, DEFAULT_CONVENTION, compute_metrics

__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "ConfusionMatrix", "compute_metrics"]


def __getattr__(name: str):  # ConfusionMatrix needs torch: import it on first use only
    if name == "ConfusionMatrix":
        from .confusion import ConfusionMatrix

        return ConfusionMatrix
    raise AttributeError(name)
