"""`TrainingFreePlugin`: a registered training-free method that is data, a name, a one-line description and the
`TrainingFreeSpec` defaults its options override (a `harness.api.SegmentationMethod`, like `methods.plugin.Plugin`
for the DeOP family). Nothing trains: `fit` and `build_untrained` build the same frozen models."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from harness.api import Fitted, MethodEnv
from harness.errors import ConfigError

from .training_free_spec import TrainingFreeSpec, coerce_option


class TrainingFreePlugin:
    """A registered training-free method: a name, a description and the defaults its options override."""

    kind = "training-free"
    option_names = frozenset(f.name for f in fields(TrainingFreeSpec))  # what suite-wide method_options reach

    def __init__(self, name: str, description: str, **defaults: Any) -> None:
        self.name = name
        self.description = description
        self.defaults = defaults
        self.spec({})  # bad defaults fail at import, not in a suite

    def spec(self, options: Mapping[str, Any]) -> TrainingFreeSpec:
        known = {f.name for f in fields(TrainingFreeSpec)}
        unknown = sorted(set(options) - known)
        if unknown:
            hints = [f"{u!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(u, known, 1)) else repr(u)
                     for u in unknown]
            raise ConfigError(f"method {self.name!r}: unknown option(s) {', '.join(hints)}. "
                              f"Options: {', '.join(sorted(known))}.")
        base = TrainingFreeSpec()
        values = {**self.defaults, **options}
        try:
            return TrainingFreeSpec(**{k: coerce_option(k, v, getattr(base, k)) for k, v in values.items()})
        except ConfigError as exc:
            raise ConfigError(f"method {self.name!r}: {exc}") from None

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return self.spec(options).as_dict()

    def benchmark_settings(self, options: Mapping[str, Any], dataset: str) -> dict[str, Any]:
        """`TrainingFreeSpec.benchmark_settings` of these options (the segmentation task checks every cell with
        it before anything runs, and records what it returns)."""
        try:
            return self.spec(options).benchmark_settings(dataset)
        except ConfigError as exc:
            raise ConfigError(f"method {self.name!r}: {exc}") from None

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        """Weights that cannot be found, before anything runs."""
        from .components.dino import dino_weights_problem
        from .components.weights import weights_problem

        spec = self.spec(options)
        problems = [weights_problem(spec.clip_arch, spec.clip_weights)]
        if spec.needs_dino:
            problems.append(dino_weights_problem(spec.dino_arch, spec.dino_weights))
        return [p for p in problems if p]

    def fit(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """Nothing to train: the frozen models, ready to predict."""
        from .pipelines.dense import build_training_free

        return build_training_free(self.name, self.spec(options), env)

    def build_untrained(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """For timing: the same as `fit`, except that missing CLIP weights fall back to random ones (said so)."""
        from .pipelines.dense import build_training_free

        return build_training_free(self.name, self.spec(options), env, random_fallback=True)
