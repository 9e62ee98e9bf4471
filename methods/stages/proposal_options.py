"""The ``proposals`` method option, checked when a method is resolved (``run --dry-run``, before any stage
trains): ``{preset: smoke, <MaskFormerConfig field>: value, ...}``. An unknown key, a wrong type or an
inconsistent network (hidden not divisible by nheads ...) is an error naming the key, not a failure after the
prompt stage has trained."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from harness.errors import ConfigError

from ..components.proposals.config import MaskFormerConfig

PRESETS = ("smoke",)


def _type_ok(annotation: str, value: Any) -> bool:
    if value is None:
        return "None" in annotation
    if annotation.startswith("tuple"):
        return isinstance(value, list | tuple)
    if annotation.startswith("bool"):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if annotation.startswith("int"):
        return isinstance(value, int)
    if annotation.startswith("float"):
        return isinstance(value, int | float)
    if annotation.startswith("str"):
        return isinstance(value, str)
    return True


def proposal_config(options: Mapping[str, Any]) -> MaskFormerConfig:
    """The MaskFormerConfig of a ``proposals`` option, or a ConfigError that names what is wrong."""
    if not isinstance(options, Mapping):
        raise ConfigError(f"option proposals must be a mapping (e.g. {{preset: smoke}}), got {options!r}.")
    overrides = dict(options)
    preset = overrides.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"option proposals.preset={preset!r} is not one of {', '.join(PRESETS)} (or absent).")
    known = {f.name: str(f.type) for f in fields(MaskFormerConfig)}
    for key, value in overrides.items():
        if key not in known:
            raise ConfigError(f"option proposals: unknown key {key!r}; known: preset, {', '.join(known)}.")
        if not _type_ok(known[key], value):
            raise ConfigError(f"option proposals.{key}={value!r} must be {known[key]}.")
    return MaskFormerConfig.smoke(**overrides) if preset == "smoke" else MaskFormerConfig(**overrides)
