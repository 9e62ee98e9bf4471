"""Options declared once: typed frozen dataclasses whose fields are options, brought to their types and checked
by one coercer, and *parts* (the replaceable pieces of a method's pipeline) registered per kind.

- `option(default, doc, low=, high=, choices=)` declares one field: its type is the annotation, its default,
  range or choices and its one-line description are the field's (``harness list parts`` prints them).
- `Options` is the base of every such dataclass (a method spec, a part): constructing one coerces every field
  through `coerce_value` (YAML lists -> tuples, ints -> floats where a float is expected) and rejects a wrong type,
  a boolean where a number is expected, a non-finite float, a value out of range or not among the choices, with a
  `ConfigError` naming the field. `Options.from_options(values, where=...)` also rejects unknown keys.
- `Part` adds what makes a piece listable: ``kind`` (e.g. ``attention``), ``name`` (the value that selects it,
  e.g. ``gps``) and a one-line ``description``. ``@register_part`` puts the class in its kind's table
  (`part_table(kind)`, a name taken twice is an error); `find_part(kind, name)` looks one up with "did you mean".

This module knows nothing about any method: methods register their parts (in-tree ones through the ``PARTS``
registry in `harness.registries`, out-of-tree ones by importing a module that uses ``@register_part``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

P = TypeVar("P", bound="Part")
OptionsT = TypeVar("OptionsT", bound="Options")


def option(default: Any, doc: str = "", *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, inference_only: bool = False, omit_default: bool = False,
           choices: tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None = None) -> Any:
    """A dataclass field that is an option: ``low``/``high`` bound a number (or each number of a tuple;
    ``low_open``/``high_open``: strictly inside), ``choices`` lists the allowed values (or a function giving them, for
    tables that plugins extend). ``inference_only``: the option changes no trained stage (it stays out of the
    stage cache keys, so methods that differ only in it share their stages). ``omit_default``: left out of the
    record and the stage keys while it has its default (an option added later keeps earlier specs' form).
    Mutable defaults are copied per instance."""
    meta = {"doc": doc, "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "inference_only": inference_only, "omit_default": omit_default, "choices": choices}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is not None and issubclass(origin, Mapping):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def coerce_value(name: str, value: Any, hint: Any, meta: Mapping[str, Any] | None = None, *,
                 shown: Any = None) -> Any:
    """``value`` (from YAML or Python) as the type ``hint`` declares, checked against the field's range and
    choices; `ConfigError` naming ``name`` otherwise. The one coercer of every option of every family."""
    meta = meta or {}
    bad = ConfigError(f"option {name}={value!r} must be {_type_name(shown or hint)}.")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise ConfigError(f"option {name}: a union of {_type_name(hint)} cannot be coerced.")
        if value is None:
            raise bad
        return coerce_value(name, value, inner[0], meta, shown=hint)
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(coerce_value(name, v, args[0], meta) for v in items)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"option {name} must be a mapping, got {value!r}.")
        inner = args[1] if len(args) == 2 else Any
        if typing.get_origin(inner) is not None and issubclass(typing.get_origin(inner), Mapping):
            return {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
        return {k: coerce_value(f"{name}.{k}", v, inner) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise bad
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"option {name}={value!r} must be a finite number.")
    elif isinstance(hint, type) and not isinstance(value, hint):
        raise bad
    _check_range(name, value, meta)
    return value


def _check_range(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    choices = meta.get("choices")
    if choices is not None:
        allowed = tuple(choices() if callable(choices) else choices)
        if value not in allowed:
            raise ConfigError(f"option {name}={value!r} is not one of {', '.join(map(str, allowed))}.")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value <= low if meta.get("low_open") else value < low):
        raise ConfigError(f"option {name}={value!r} must be {'>' if meta.get('low_open') else '>='} {low:g}.")
    if high is not None and (value >= high if meta.get("high_open") else value > high):
        raise ConfigError(f"option {name}={value!r} must be {'<' if meta.get('high_open') else '<='} {high:g}.")


def unknown_keys_error(where: str, unknown: list[str], known: list[str]) -> ConfigError:
    hints = [f"{u!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(u, known, 1)) else repr(u)
             for u in sorted(unknown)]
    return ConfigError(f"{where}unknown option(s) {', '.join(hints)}. Options: {', '.join(sorted(known))}.")


@dataclasses.dataclass(frozen=True)
class Options:
    """A frozen dataclass of options, each field coerced and checked on construction (see `coerce_value`)."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            try:
                value = coerce_value(f.name, getattr(self, f.name), hints[f.name], f.metadata)
            except ConfigError as exc:  # a spec field that mirrors a part's option names the part too
                raise ConfigError(f"part {f.metadata['part']}: {exc}" if f.metadata.get("part") else str(exc)) \
                    from None
            object.__setattr__(self, f.name, value)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls: type[OptionsT], values: Mapping[str, Any], *, where: str = "") -> OptionsT:
        """An instance from ``values`` over the defaults; unknown keys and bad values are `ConfigError`s
        prefixed with ``where`` (e.g. ``"method 'x', part attention 'kk+gauss': "``)."""
        unknown = sorted(set(values) - set(cls.option_names()))
        if unknown:
            raise unknown_keys_error(where, unknown, list(cls.option_names()))
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
        except TypeError as exc:  # a required field without a value
            raise ConfigError(f"{where}{exc}") from None

    def options(self) -> dict[str, Any]:
        """The options as plain values (mappings -> dicts; JSON writes tuples as lists), for records and keys."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def describe_options(cls) -> list[tuple[str, str, Any, str]]:
        """(name, type, default, description + range) of every option, for ``harness list parts``."""
        hints, rows = _hints(cls), []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            meta = f.metadata
            bounds = []
            if meta.get("low") is not None:
                bounds.append(f"{'>' if meta.get('low_open') else '>='} {meta['low']:g}")
            if meta.get("high") is not None:
                bounds.append(f"{'<' if meta.get('high_open') else '<='} {meta['high']:g}")
            if meta.get("choices") is not None:
                choices = meta["choices"]
                bounds.append("one of " + ", ".join(map(str, choices() if callable(choices) else choices)))
            doc = meta.get("doc", "") + (f" ({'; '.join(bounds)})" if bounds else "")
            rows.append((f.name, _type_name(hints[f.name]), _jsonable(default), doc.strip()))
        return rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class Part(Options):
    """A replaceable piece of a pipeline: ``kind`` (its table), ``name`` (how a spec selects it) and a one-line
    ``description``; its fields are its options."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def label(self) -> str:
        """How figures and listings name this instance."""
        return self.name


_TABLES: dict[str, dict[str, type[Part]]] = {}
_ALIASES: dict[str, dict[str, str]] = {}


def part_aliases(kind: str) -> dict[str, str]:
    """The (mutable, shared) old name -> registered name map of one kind (e.g. the training-free ``qk``)."""
    return _ALIASES.setdefault(kind, {})


def part_table(kind: str) -> dict[str, type[Part]]:
    """The (mutable, shared) name -> class table of one kind of part; created on first use."""
    return _TABLES.setdefault(kind, {})


def register_part(cls: type[P]) -> type[P]:
    """Class decorator: add ``cls`` to the table of ``cls.kind`` under ``cls.name`` (taken twice: an error)."""
    if not cls.kind or not cls.name or not cls.description:
        raise ConfigError(f"part {cls.__name__} needs a kind, a name and a one-line description.")
    table = part_table(cls.kind)
    previous = table.get(cls.name)
    if previous is not None and previous is not cls:
        raise ConfigError(f"{cls.kind} part name {cls.name!r} is taken by {previous.__module__}."
                          f"{previous.__qualname__}.")
    table[cls.name] = cls
    return cls


def find_part(kind: str, name: str, *, option: str | None = None) -> type[Part]:
    """The registered part ``name`` of ``kind``; a `ConfigError` with close matches otherwise."""
    table = part_table(kind)
    name = part_aliases(kind).get(name, name)
    if name in table:
        return table[name]
    close = difflib.get_close_matches(str(name), list(table), 2)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    what = f"option {option}={name!r}" if option else f"{kind} part {name!r}"
    raise ConfigError(f"{what} is not a registered {kind} part ({', '.join(table) or 'none registered'}).{hint}")


def part_kinds() -> list[str]:
    return list(_TABLES)
