"""One generic registry for methods, datasets and suite building blocks.

Entries are lazy: a name maps to a ``"package.module:attribute"`` string, and nothing is imported until the
entry is first used. Registering a name twice is an error (silently replacing a method would make two runs
of "the same" suite disagree); an unknown name gets close matches and the full list of known names.

A registry may name *plugin modules*: modules whose import registers entries (e.g. ``methods.catalog``).
They are imported on the first lookup. User plugins add more without touching this code: the modules named by
``HARNESS_PLUGINS`` (comma-separated) and the entry points of installed distributions in the group
``deop_harness.plugins`` (``[project.entry-points."deop_harness.plugins"] my_plugin = "my_package.plugin"``).
A user plugin that fails to import is isolated: it is recorded in `BROKEN_PLUGINS` with its error, named by
``harness list`` and by the "unknown ..." message of a lookup, and every other entry stays usable.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")

ENTRY_POINT_GROUP = "deop_harness.plugins"
BROKEN_PLUGINS: dict[str, str] = {}  # user plugin (how it was named) -> its import error, shared by every registry


def user_plugins() -> list[tuple[str, str]]:
    """(label, module or module:attr) of every user plugin: HARNESS_PLUGINS, then installed entry points."""
    extra = [m.strip() for m in os.environ.get("HARNESS_PLUGINS", "").split(",") if m.strip()]
    found = [(f"{m} (HARNESS_PLUGINS)", m) for m in extra]
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", None) or "?"  # EntryPoint.dist is optional in importlib.metadata
        found.append((f"{ep.name} (entry point of {dist}: {ep.value})", ep.value))
    return found


def _import_plugin(target: str) -> None:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        module = getattr(module, part)


def broken_plugins_note() -> str:
    """One sentence per user plugin that failed to import (empty when none did)."""
    return "".join(f" Plugin {label} failed to import: {error}." for label, error in BROKEN_PLUGINS.items())


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:attr"
    defined_in: str  # where the register() call was made, for origin()


def _load_target(target: str) -> Any:
    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"registry target {target!r} is not of the form 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _caller_location(depth: int) -> str:
    import sys

    frame = sys._getframe(depth)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class Registry(Generic[T]):
    """A name -> lazily imported object map with helpful errors."""

    def __init__(self, kind: str, plugins: Iterable[str] = ()) -> None:
        self.kind = kind
        self._plugins = tuple(plugins)
        self._plugins_loaded = False
        self._entries: dict[str, Entry] = {}
        self._cache: dict[str, T] = {}

    # -- registration -------------------------------------------------------------------------------
    def register(self, name: str, target: str) -> None:
        """Register ``name`` for the object at ``target`` ("package.module:attr"); nothing is imported."""
        if not isinstance(name, str) or not name.strip():
            raise RegistryError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if ":" not in target:
            raise RegistryError(
                f"{self.kind} {name!r}: target {target!r} must be 'package.module:attribute'"
            )
        if name in self._entries:
            previous = self._entries[name]
            raise RegistryError(
                f"{self.kind} {name!r} is registered twice: first at {previous.defined_in} "
                f"(-> {previous.target}), again at {_caller_location(2)} (-> {target}). "
                f"Pick a different name for one of them."
            )
        self._entries[name] = Entry(name, target, _caller_location(2))

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests that register temporary doubles)."""
        self._entries.pop(name, None)
        self._cache.pop(name, None)

    # -- lookup -------------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for module_name in self._plugins:  # the project's own: an error here is a bug, raised
            importlib.import_module(module_name)
        for label, target in user_plugins():
            if label in BROKEN_PLUGINS:
                continue
            try:
                _import_plugin(target)
            except Exception as exc:  # noqa: BLE001 - isolated: named in `list` and in lookups, the rest usable
                BROKEN_PLUGINS[label] = f"{type(exc).__name__}: {exc}"

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def entry(self, name: str) -> Entry:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        return f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {listing}.{broken_plugins_note()}"

    def get(self, name: str) -> T:
        """The registered object, imported on first use."""
        entry = self.entry(name)
        if name not in self._cache:
            self._cache[name] = _load_target(entry.target)
        return self._cache[name]

    def origin(self, name: str) -> str:
        """Where ``name`` is defined: its target and the place it was registered."""
        entry = self.entry(name)
        return f"{entry.target} (registered at {entry.defined_in})"
