"""`Plugin`: the one plugin class of every method family. A registered method is data: a name, a one-line
description, its spec class (`methods.spec.MethodSpec` for the DeOP family and SimBaseline,
`methods.training_free_spec.TrainingFreeSpec` for the training-free family, any `methods.spec_base.SpecBase` of
an out-of-tree family) and the defaults its options override. Options are resolved by the one coercer
(`harness.parts`); errors name the method, the part and the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.api import Fitted, MethodEnv, SegmentationMethod
from harness.errors import ConfigError

from .spec import MethodSpec
from .spec_base import SpecBase


class Plugin(SegmentationMethod):
    """A registered method (a `harness.api.SegmentationMethod`): ``Plugin("baseline-kk", "...", ps="kk")``,
    or ``Plugin("my-clip", "...", spec_type=TrainingFreeSpec, attention="blend", blend=0.3)``."""

    def __init__(self, name: str, description: str, *, spec_type: type[SpecBase] = MethodSpec,
                 **defaults: Any) -> None:
        self.name = name
        self.description = description
        self.spec_type = spec_type
        self.defaults = defaults
        self._resolved: dict[str, SpecBase] = {}  # options (as JSON) -> their frozen spec: resolved once
        # what suite-wide method_options reach: the spec's own fields (an alias reaches a method only by its row)
        self.option_names = frozenset(spec_type.option_names()) - {"extra_options"}
        self.resolve({})  # a plugin with bad defaults fails at import, not in a suite

    @property
    def kind(self) -> str:
        """The pipeline of its default spec (``one-pass``, ``multi-pass``, ``training-free`` ...)."""
        return self.spec({}).kind

    def spec(self, options: Mapping[str, Any]) -> SpecBase:
        """The resolved, frozen spec of these options over the plugin's defaults. Resolved once per distinct
        options: a cell's check, preflight, benchmark settings, build and record all get this one object."""
        key = json.dumps(options, sort_keys=True, default=repr)
        if key not in self._resolved:
            if len(self._resolved) >= 256:
                self._resolved.pop(next(iter(self._resolved)))
            self._resolved[key] = self.spec_type.resolve({**self.defaults, **options}, where=f"method {self.name!r}: ")
        return self._resolved[key]

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return self.spec(options).as_dict()

    def benchmark_settings(self, options: Mapping[str, Any], dataset: str) -> dict[str, Any] | None:
        """What the method runs with on ``dataset`` (recorded), None without a background decision; a
        `ConfigError` (naming the method) for a setting that does not fit the dataset, before anything runs."""
        try:
            return self.spec(options).benchmark_settings(dataset, method=self.name)
        except ConfigError as exc:
            raise ConfigError(f"method {self.name!r}: {exc}") from None

    def preflight(self, options: Mapping[str, Any]) -> list[str]:
        """What this method would miss before it starts (weights that cannot be found), as messages."""
        return self.spec(options).preflight()

    def dataset_preflight(self, options: Mapping[str, Any], dataset: str) -> list[str]:
        """What this method would miss on ``dataset`` alone (its spec's per-dataset files), as messages."""
        return self.spec(options).dataset_preflight(dataset, self.name)

    def build_untrained(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """The inference graph with untrained stages, for timing (pretrained weights when available)."""
        return self.spec(options).build(self.name, env, train=False)

    def fit(self, options: Mapping[str, Any], env: MethodEnv) -> Fitted:
        """Train every stage this method needs (cached) and return a ready `Segmenter`."""
        return self.spec(options).build(self.name, env, train=True)
