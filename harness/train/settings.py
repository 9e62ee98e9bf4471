"""The typed schema of training settings: ``defaults.train.<stage>.<key>`` in a suite, a profile or ``--set``.

Every key a stage's schedule takes, with its type and range, checked when a suite is validated (``run
--dry-run`` and before any cell runs), so ``iters: -5`` or ``batch_size: 0`` is an error that names the key
instead of zero training steps recorded as ``ok``, or a raw error after an hour. Absent keys follow the
method's official recipe (``methods/stages/*``); the seed is the suite's ``defaults.seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

STAGES = ("prompts", "proposals", "head")


@dataclass(frozen=True)
class Rule:
    """One setting: its kind (int, number, choice, ...), an inclusive or exclusive range, whether null is allowed."""

    kind: str                       # "int", "number", "choice", "int list", "multipliers"
    minimum: float | None = None
    above: float | None = None      # strictly greater than
    below: float | None = None      # strictly less than
    choices: tuple[str, ...] = ()
    nullable: bool = False
    doc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        else:
            text = {"int": "an integer", "number": "a number", "int list": "a non-empty list of integers",
                    "multipliers": "a mapping of parameter-name part to a number"}[self.kind]
            if self.minimum is not None:
                text += f" >= {self.minimum:g}"
            if self.above is not None:
                text += f" > {self.above:g}"
            if self.below is not None:
                text += f" < {self.below:g}"
        return text + (" or null" if self.nullable else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "int list":
            return (isinstance(value, list | tuple) and len(value) > 0
                    and all(self._number_ok(v, integer=True) for v in value))
        if self.kind == "multipliers":
            return isinstance(value, Mapping) and all(isinstance(k, str) and self._number_ok(v, integer=False)
                                                      for k, v in value.items())
        return self._number_ok(value, integer=self.kind == "int")

    def _number_ok(self, value: Any, integer: bool) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            return False
        if not math.isfinite(value):  # NaN, and inf (lr: .inf would train to NaN)
            return False
        return ((self.minimum is None or value >= self.minimum) and (self.above is None or value > self.above)
                and (self.below is None or value < self.below))


# The training loop's settings (harness.train.loop.TrainConfig, less the seed) and the data settings of stages
# that read images (crop and resize sizes).
TRAIN_SETTINGS: dict[str, Rule] = {
    "iters": Rule("int", minimum=1, doc="optimisation steps"),
    "batch_size": Rule("int", minimum=1, doc="global batch size"),
    "lr": Rule("number", above=0, doc="base learning rate"),
    "weight_decay": Rule("number", minimum=0),
    "optimizer": Rule("choice", choices=("adamw", "sgd")),
    "momentum": Rule("number", minimum=0, below=1),
    "schedule": Rule("choice", choices=("poly", "cosine", "constant")),
    "power": Rule("number", above=0, doc="poly schedule exponent"),
    "warmup_iters": Rule("int", minimum=0),
    "warmup_factor": Rule("number", above=0),
    "warmup_method": Rule("choice", choices=("constant", "linear")),
    "clip_grad_norm": Rule("number", above=0, nullable=True, doc="null: no clipping"),
    "amp": Rule("choice", choices=("bf16", "fp16"), nullable=True, doc="null: fp32"),
    "lr_multipliers": Rule("multipliers", minimum=0, doc="e.g. {backbone: 0.1}"),
    "checkpoint_every": Rule("int", minimum=1),
    "log_every": Rule("int", minimum=1),
    "crop": Rule("int", minimum=1, doc="training crop side"),
    "min_sizes": Rule("int list", minimum=1, doc="shorter-side choices of the resize"),
    "max_size": Rule("int", minimum=1, doc="longer-side cap of the resize"),
    "max_images": Rule("int", minimum=1, nullable=True),
}


def check_stage_settings(stage: str, settings: Any, where: str = "train") -> None:
    """Raise ConfigError naming ``<where>.<stage>.<key>`` for an unknown key, a wrong type or an out-of-range value."""
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where}.{stage} must be a mapping of settings (e.g. {{iters: 100, lr: 1e-4}}), got "
                          f"{settings!r}.")
    for key, value in settings.items():
        rule = TRAIN_SETTINGS.get(key)
        if rule is None:
            hint = " (the seed is defaults.seed)" if key == "seed" else ""
            raise ConfigError(f"{where}.{stage}: unknown setting {key!r}{hint}; known: "
                              f"{', '.join(TRAIN_SETTINGS)}.")
        if not rule.accepts(value):
            raise ConfigError(f"{where}.{stage}.{key} must be {rule.describe()}, got {value!r}"
                              f"{' (a string)' if isinstance(value, str) else ''}.")


def check_train_settings(train: Any, where: str = "train") -> None:
    """Check a task's ``train`` option: ``{prompts: {...}, proposals: {...}, head: {...}}``."""
    if not isinstance(train, Mapping):
        raise ConfigError(f"{where} must be a mapping of stages ({', '.join(STAGES)}), got {train!r}.")
    unknown = sorted(set(train) - set(STAGES))
    if unknown:
        raise ConfigError(f"{where}: unknown stage(s) {unknown}; stages are {', '.join(STAGES)}.")
    for stage, settings in train.items():
        check_stage_settings(stage, settings, where)
