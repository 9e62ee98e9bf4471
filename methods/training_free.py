"""`TrainingFreePlugin`: a training-free method is a `methods.plugin.Plugin` over a `TrainingFreeSpec` (the one
plugin class of every family); this is that plugin with the spec class filled in. Nothing trains: `fit` and
`build_untrained` build the same frozen models."""

from __future__ import annotations

from typing import Any

from .plugin import Plugin
from .training_free_spec import TrainingFreeSpec


def TrainingFreePlugin(name: str, description: str, **defaults: Any) -> Plugin:  # noqa: N802 - reads as a class
    """``Plugin(name, description, spec_type=TrainingFreeSpec, **defaults)``."""
    return Plugin(name, description, spec_type=TrainingFreeSpec, **defaults)
