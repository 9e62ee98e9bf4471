"""`SpecBase`: what every method spec is (the DeOP family's `MethodSpec`, the training-free `TrainingFreeSpec`, an
out-of-tree family's own): a frozen dataclass of options coerced by the one coercer of `harness.parts`, which names
its parts and says how it is built. `methods.plugin.Plugin` is the one plugin class over any of them.

A spec selects parts by option (``part_options``: option name -> part kind, e.g. ``{"ps": "attention"}``); an
option that is not a field of the spec but of a selected part (an out-of-tree rule's ``blend``) is accepted and
kept in ``extra_options``, checked by that part's own fields. ``option_aliases`` maps old option names to current
ones (``attention`` and ``ps`` name the same rules).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import ConfigError
from harness.parts import Options, Part, find_part, option, unknown_keys_error

if TYPE_CHECKING:
    from harness.api import Fitted, MethodEnv


def part_option(part: type[Part], field_name: str) -> Any:
    """A spec field that mirrors an option of a part (its default, range and description declared once, in the
    part): e.g. the training-free spec's ``sigma`` is `KKGauss`'s."""
    source = {f.name: f for f in dataclasses.fields(part)}[field_name]
    label = f"{part.kind} {part.name!r}" if part.name else part.kind  # an unregistered base: the kind
    metadata = {**source.metadata, "part": label}
    if source.default_factory is not dataclasses.MISSING:  # a mapping default: one copy per instance
        return dataclasses.field(default_factory=source.default_factory, metadata=metadata)
    return dataclasses.field(default=source.default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class SpecBase(Options):
    """A method spec: its fields are the method's options. Subclasses implement `build` and may override the
    hooks below (defaults: nothing to check, no background decision)."""

    # "package.module:function" of `build(name, spec, env, *, train) -> Fitted`: imported only when a method is
    # built (the pipelines are heavy, and they import the spec)
    builder: ClassVar[str] = ""
    part_options: ClassVar[dict[str, str]] = {}
    option_aliases: ClassVar[dict[str, str]] = {}
    # options of the selected parts that are not fields of the spec (out-of-tree parts' options)
    extra_options: Mapping[str, Any] = option({}, "options of the selected parts that the spec has no field for")

    @classmethod
    def resolve(cls, values: Mapping[str, Any], *, where: str = "") -> SpecBase:
        """A spec from ``values`` over the defaults: aliases renamed, options of selected parts set aside in
        ``extra_options`` (checked by the part), everything else through the coercer; errors prefixed ``where``."""
        values = {cls.option_aliases.get(k, k): v for k, v in values.items()}
        own = set(cls.option_names())
        extra = {k: v for k, v in values.items() if k not in own}
        if extra:
            selected = {name: values.get(name, _default(cls, name)) for name in cls.part_options}
            accepted = set()
            for name, kind in cls.part_options.items():
                try:
                    accepted |= set(find_part(kind, selected[name], option=name).option_names())
                except ConfigError:
                    pass  # an unknown part name is reported by the field's own check below
            unknown = sorted(set(extra) - accepted)
            if unknown:
                known = sorted(own - {"extra_options"} | accepted | set(cls.option_aliases))
                raise unknown_keys_error(where, unknown, known)
            values = {k: v for k, v in values.items() if k in own}
            values["extra_options"] = {**dict(values.get("extra_options", {})), **extra}
        return cls.from_options(values, where=where)

    def build_part(self, option_name: str, **given: Any) -> Part:
        """The part selected by ``option_name``, its options taken from ``given``, then from the spec's fields of
        the same name, then from ``extra_options`` (an out-of-tree part's), else the part's defaults."""
        kind = self.part_options[option_name]
        cls = find_part(kind, getattr(self, option_name), option=option_name)
        names = set(cls.option_names())
        values = {k: v for k, v in self.extra_options.items() if k in names}
        values.update({k: getattr(self, k) for k in names & set(self.option_names()) - {"extra_options"}})
        values.update({k: v for k, v in given.items() if k in names})
        return cls.from_options(values, where=f"part {kind} {cls.name!r}: ")

    def trained_options(self, inference_only: tuple[str, ...] = ()) -> dict[str, Any]:
        """`as_dict` without the options that change no trained stage (the spec's ``inference_only`` fields and
        the selected parts' options declared ``inference_only``): what a stage's cache key holds of the method."""
        out = {k: v for k, v in self.as_dict().items() if k not in inference_only}
        if "extra_options" in out:
            skip = set()
            for name, kind in self.part_options.items():
                cls = find_part(kind, getattr(self, name), option=name)
                skip |= {f.name for f in dataclasses.fields(cls) if f.metadata.get("inference_only")}
            out["extra_options"] = {k: v for k, v in out["extra_options"].items() if k not in skip}
            if not out["extra_options"]:
                del out["extra_options"]
        return out

    def check_parts(self) -> None:
        """Build every selected part once, so a bad part option fails when the spec is made."""
        for name in self.part_options:
            self.build_part(name)

    # -- hooks of the plugin (methods.plugin.Plugin) --------------------------------------------------------
    def preflight(self) -> list[str]:
        """What the method would miss before it starts (weights that cannot be found), as messages."""
        return []

    def dataset_preflight(self, dataset: str, method: str) -> list[str]:
        """What the method ``method`` would miss on ``dataset`` alone (files read per dataset), as messages."""
        return []

    def benchmark_settings(self, dataset: str, method: str = "") -> dict[str, Any] | None:
        """What the method ``method`` (its registered name) runs with on ``dataset`` (for the record), a
        `ConfigError` for a setting that does not fit it; None: the method has no background decision (it is not
        run on with-background benchmarks)."""
        return None

    def build(self, name: str, env: MethodEnv, *, train: bool) -> Fitted:
        """The segmenter of this spec; ``train``: its stages trained (cached), else untrained (for timing)."""
        return self.load_builder()(name, self, env, train=train)

    def load_builder(self) -> Any:
        module, _, attr = self.builder.partition(":")
        if not module or not attr:
            raise NotImplementedError(f"{type(self).__name__} does not say how it is built (its builder).")
        return getattr(importlib.import_module(module), attr)

    def as_dict(self) -> dict[str, Any]:
        """The resolved spec for the record (``extra_options`` only when there are any, and the ``omit_default``
        options only when set, so that the records and stage keys of in-tree methods keep their form)."""
        out = self.options()
        if not out["extra_options"]:
            del out["extra_options"]
        for f in dataclasses.fields(self):
            if f.metadata.get("omit_default") and getattr(self, f.name) == f.default:
                del out[f.name]
        return out


def _default(cls: type[SpecBase], name: str) -> Any:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default
