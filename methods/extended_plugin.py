"""`ExtendedPlugin`: a training-free plugin whose method has options beyond `TrainingFreeSpec` (issue 23's SC-CLIP
and LPOSS), held in a frozen dataclass of its own. The shared options (image size, windows, names, templates,
thresholds, the two resizings, CLIP weights) stay a `TrainingFreeSpec`, so the protocol checks, per-dataset
settings and the record's `benchmark_settings` are the family's own; the method's options are typed and
range-checked by its dataclass's `__post_init__` before anything runs. Interim: the parts mechanism (issue 22)
is meant to replace this class."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from typing import Any

from harness.api import Fitted, MethodEnv
from harness.errors import ConfigError

from .plugin import Plugin
from .training_free_spec import TrainingFreeSpec

SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainingFreeSpec))
Builder = Callable[[str, TrainingFreeSpec, Any, MethodEnv, bool], Fitted]


class ExtendedPlugin(Plugin):
    """A name, a description, the `TrainingFreeSpec` defaults, the method's options dataclass (`extra_type`, with
    `extra_defaults`; it has `weights_problems(spec)`) and `build(name, spec, extra, env, random_fallback) -> Fitted`."""

    def __init__(self, name: str, description: str, *, extra_type: type, build: Builder,
                 extra_defaults: Mapping[str, Any] | None = None, **defaults: Any) -> None:
        self.extra_type = extra_type
        self.build = build
        self.extra_defaults = dict(extra_defaults or {})
        self.extra_names = frozenset(f.name for f in dataclasses.fields(extra_type))
        super().__init__(name, description, spec_type=TrainingFreeSpec, **defaults)
        self.option_names = SPEC_FIELDS | self.extra_names
        self.extra({})  # bad defaults fail at import

    def _check_known(self, options: Mapping[str, Any]) -> None:
        known = self.option_names
        unknown = sorted(set(options) - known)
        if unknown:
            hints = [f"{u!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(u, known, 1)) else repr(u)
                     for u in unknown]
            raise ConfigError(f"method {self.name!r}: unknown option(s) {', '.join(hints)}. "
                              f"Options: {', '.join(sorted(known))}.")

    def spec(self, options: Mapping[str, Any]) -> TrainingFreeSpec:
        self._check_known(options)
        return super().spec({k: v for k, v in options.items() if k in SPEC_FIELDS})

    def extra(self, options: Mapping[str, Any]) -> Any:
        self._check_known(options)
        values = {**self.extra_defaults, **{k: v for k, v in options.items() if k in self.extra_names}}
        try:
            return self.extra_type(**values)
        except ConfigError as exc:
            raise ConfigError(f"method {self.name!r}: {exc}") from None

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.spec(options).as_dict(), **dataclasses.asdict(self.extra(options))}

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        extra = self.extra(options)
        problems = super().preflight({k: v for k, v in options.items() if k in SPEC_FIELDS})
        return problems + [p for p in extra.weights_problems(self.spec(options)) if p]

    def fit(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        return self.build(self.name, self.spec(options), self.extra(options), env, False)

    def build_untrained(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        return self.build(self.name, self.spec(options), self.extra(options), env, True)


def check_number(name: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> None:
    """ConfigError naming the option unless `value` is a number (an int where `integer`) in [lo, hi]."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not lo <= value <= hi:
        raise ConfigError(f"option {name} must be {'an integer' if integer else 'a number'} in [{lo}, {hi}], "
                          f"got {value!r}.")
