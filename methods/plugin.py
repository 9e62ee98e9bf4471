"""`Plugin`: a registered method that is data, a name, a one-line description and the `MethodSpec` defaults its
options override. It builds its segmenter through the one assembly path (`methods.pipelines.assemble`)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, get_args, get_type_hints

from harness.api import Fitted, MethodEnv
from harness.errors import ConfigError

from .spec import MethodSpec

# A field whose default is None (e.g. crop_chunk: int | None) is checked against its annotation instead.
_OPTIONAL_TYPES = {name: tuple(t for t in get_args(hint) if t is not type(None))
                   for name, hint in get_type_hints(MethodSpec).items() if type(None) in get_args(hint)}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Bring a YAML value to the field's type (lists -> tuples, ints -> floats where a float is expected)."""
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            value = [value]
        inner = type(default[0]) if default else None
        return tuple(float(v) if inner is float and isinstance(v, int) else v for v in value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"option {name} must be a mapping, got {value!r}.")
        return dict(value)
    if default is not None and not isinstance(value, type(default)) and value is not None:
        raise ConfigError(f"option {name} must be {type(default).__name__}, got {value!r}.")
    allowed = _OPTIONAL_TYPES.get(name)
    if default is None and value is not None and allowed and (isinstance(value, bool)
                                                                or not isinstance(value, allowed)):
        names = " or ".join(t.__name__ for t in allowed)
        raise ConfigError(f"option {name} must be {names} or null, got {value!r}.")
    return value


class Plugin:
    """A registered method: a name, a description and the defaults its options override (a
    `harness.api.SegmentationMethod`)."""

    option_names = frozenset(f.name for f in fields(MethodSpec))  # what suite-wide method_options reach

    def __init__(self, name: str, description: str, **defaults: Any) -> None:
        self.name = name
        self.description = description
        self.defaults = defaults
        self.resolve({})  # a plugin with bad defaults fails at import, not in a suite

    @property
    def kind(self) -> str:
        """The pipeline of its default spec (``one-pass`` or ``multi-pass``), for ``harness list methods``."""
        return self.spec({}).kind

    def spec(self, options: Mapping[str, Any]) -> MethodSpec:
        known = {f.name: f for f in fields(MethodSpec)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            hints = [f"{u!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(u, known, 1)) else repr(u)
                     for u in unknown]
            raise ConfigError(f"method {self.name!r}: unknown option(s) {', '.join(hints)}. "
                              f"Options: {', '.join(known)}.")
        values = {**self.defaults, **options}
        base = MethodSpec()
        coerced = {k: _coerce(k, v, getattr(base, k)) for k, v in values.items()}
        try:
            return MethodSpec(**coerced)
        except ConfigError as exc:
            raise ConfigError(f"method {self.name!r}: {exc}") from None

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return self.spec(options).as_dict()

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        """What this method would miss before it starts (weights that cannot be found), as messages."""
        from .components.weights import weights_problem

        spec = self.spec(options)
        problem = weights_problem(spec.clip_arch, spec.clip_weights)
        return [problem] if problem else []

    def build_untrained(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """The inference graph with untrained stages, for timing (CLIP pretrained when available)."""
        from .pipelines.assemble import assemble  # heavy (open_clip): only when a method is built

        return assemble(self.name, self.spec(options), env, train=False)

    def fit(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """Train every stage this method needs (cached) and return a ready `Segmenter`."""
        from .pipelines.assemble import assemble

        return assemble(self.name, self.spec(options), env, train=True)
