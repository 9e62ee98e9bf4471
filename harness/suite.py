"""Suite files: YAML -> strictly validated, frozen dataclasses.

A suite says which methods run on which benchmarks under which settings::

    suite: table3_ablation            # required: the suite's name (records carry it)
    description: ...                  # optional
    table: table3                     # optional: the paper table layout (results/paper/<table>.yaml)
    include: common.yaml              # optional, ONE level: a base file this one extends
    defaults: {seed: 0}               # optional: task options shared by every benchmark whose task takes them
    methods:                          # required: table rows; a plain string is a method with no options
      - baseline
      - {name: ps-gps-a1, method: baseline+ps, options: {ps: gps, alpha: 1.0}}
    benchmarks:                       # required
      - {name: coco-stuff, task: segmentation, dataset: coco_stuff_171, options: {}, method_options: {},
         slurm: {gpus_per_node: 1, timeout_min: 600}}   # optional: resources of its jobs (--executor slurm)
    settings:                         # optional axis (default: one setting named "default")
      - {name: matched, options: {}, method_options: {test_short_side: 512}}
    profiles:                         # optional: named overrides, applied like --set
      smoke: {benchmarks.coco-stuff.dataset: synthetic_coco}
    default_profile: smoke            # optional: the profile used without --profile (default: paper)
    threads: 1                        # optional: torch CPU threads for the run (default: torch's choice; a
                                      # profile may set it, `run --threads` overrides it)

Every error names the file, the key path and (where YAML gives it) the line. ``include``: the included file's
mappings (``defaults``, ``profiles``) are merged key by key, its lists (``methods``, ``benchmarks``,
``settings``) are replaced by the including file's when it has them. Overrides (``profiles`` and ``--set``)
address list items by their ``name``: ``methods.deop.options.alpha=1``; values are parsed as YAML (``1e-3`` is a
number) and the result is validated exactly like the file. Layers apply in order, file < include's base < profile
< ``--set``, and a mapping set over a mapping merges key by key (``harness/suite_values.py``): a profile's
``defaults.train`` changes the stages it names and keeps the rest of the file's.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from .errors import ConfigError
from .executors.resources import resource_problem
from .paths import path_name_problem
from .suite_values import apply_override, freeze, merge_options, parse_override, thaw, type_name
from .yaml_lines import KeyPath, format_path, read_yaml_file

__all__ = ["Benchmark", "MethodRow", "Setting", "Suite", "apply_override", "freeze", "load_suite", "merge_options",
           "parse_override", "thaw"]

DEFAULT_PROFILE = "paper"
DEFAULT_SETTING = "default"

TOP_KEYS = {"suite": str, "description": str, "table": str, "include": str, "default_profile": str, "defaults": dict,
            "methods": list, "benchmarks": list, "settings": list, "profiles": dict, "threads": int}
REQUIRED_TOP = ("suite", "methods", "benchmarks")
METHOD_KEYS = {"name": str, "method": str, "options": dict, "description": str}
BENCHMARK_KEYS = {"name": str, "task": str, "dataset": str, "options": dict, "method_options": dict,
                  "description": str, "slurm": dict}
SETTING_KEYS = {"name": str, "options": dict, "method_options": dict, "description": str}
TYPE_NAMES = {str: "a string", dict: "a mapping", list: "a list", int: "an integer", float: "a number"}


@dataclass(frozen=True)
class MethodRow:
    name: str          # the row key: what tables and records call it
    method: str        # the registered plugin
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    task: str
    dataset: str | None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    method_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    slurm: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # resources of its jobs


@dataclass(frozen=True)
class Setting:
    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    method_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    profile: str
    methods: tuple[MethodRow, ...]
    benchmarks: tuple[Benchmark, ...]
    settings: tuple[Setting, ...]
    defaults: Mapping[str, Any]
    table: str | None = None
    description: str = ""
    profiles: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()  # every override applied (profile's and --set), in order
    threads: int | None = None       # torch CPU threads the suite asks for (None: torch's default)

    def digest(self) -> str:
        """A short hash of everything that defines the suite's cells (for provenance)."""
        blob = json.dumps(
            {"methods": [thaw(vars(m)) for m in self.methods],
             "benchmarks": [thaw(vars(b)) for b in self.benchmarks],
             "settings": [thaw(vars(s)) for s in self.settings], "defaults": thaw(self.defaults)},
            sort_keys=True, default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- errors ----------------------------------------------------------------------------------------------
class _Where:
    """Formats 'file, key path, line' for error messages."""

    def __init__(self, path: Path, lines: dict[KeyPath, int], origin: dict[KeyPath, str] | None = None):
        self.path = path
        self.lines = lines
        self.origin = origin or {}

    def __call__(self, key_path: KeyPath) -> str:
        source = self.origin.get(key_path)
        if source:
            return f"{self.path}: {format_path(key_path)} (set by {source})"
        line = next((self.lines[key_path[:n]] for n in range(len(key_path), -1, -1)
                     if key_path[:n] in self.lines), None)
        return f"{self.path}, line {line}: {format_path(key_path)}" if line else f"{self.path}: {format_path(key_path)}"

    def error(self, key_path: KeyPath, message: str) -> ConfigError:
        return ConfigError(f"{self(key_path)}: {message}")


def _check_mapping(data: Any, allowed: dict[str, type], path: KeyPath, where: _Where, required=("name",)) -> None:
    if not isinstance(data, dict):
        raise where.error(path, f"expected a mapping, got {type_name(data)}.")
    for key, value in data.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise where.error((*path, key), f"unknown key {key!r}.{hint} Allowed keys: {', '.join(allowed)}.")
        expected = allowed[key]
        if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
            raise where.error((*path, key), f"must be {TYPE_NAMES[expected]}, got {type_name(value)} ({value!r}).")
    for key in required:
        if key not in data:
            raise where.error(path, f"the required key {key!r} is missing.")


def _check_names_unique(items: list[dict], section: str, where: _Where) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        name = item["name"]
        if name in seen:
            raise where.error((section, i, "name"), f"duplicate name {name!r} (also {section}[{seen[name]}]).")
        problem = path_name_problem(name)
        if problem:
            raise where.error((section, i, "name"), f"name {name!r} {problem}; choose a plain name.")
        seen[name] = i


# -- loading -----------------------------------------------------------------------------------------------
def _read(path: Path) -> tuple[dict, dict[KeyPath, int]]:
    try:
        data, lines = read_yaml_file(path)
    except FileNotFoundError:
        raise ConfigError(f"suite file {path} does not exist. `python -m harness list suites` shows the suites "
                          f"in suites/.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give a suite file such as suites/smoke.yaml.") from None
    except OSError as exc:
        raise ConfigError(f"suite file {path} cannot be read: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}. Fix the file and run again.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite file must be a mapping with at least the keys "
                          f"{', '.join(REQUIRED_TOP)}; got {type_name(data)}.")
    return data, lines


def _merge_include(data: dict, lines: dict, path: Path) -> tuple[dict, dict, Path]:
    include = data.get("include")
    if include is None:
        return data, lines, path
    where = _Where(path, lines)
    if not isinstance(include, str):
        raise where.error(("include",), f"must be a file name, got {type_name(include)}.")
    base_path = (path.parent / include).resolve()
    if not base_path.exists():
        raise where.error(("include",), f"the included file {base_path} does not exist.")
    base, base_lines = _read(base_path)
    if "include" in base:
        raise _Where(base_path, base_lines).error(
            ("include",), f"is included by {path}, and includes may not be nested (one level at most).")
    merged = copy.deepcopy(base)
    for key, value in data.items():
        if key == "include":
            continue
        if key in ("defaults", "profiles") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_options(merged[key], value)
        else:
            merged[key] = value
    # Lines: keys written in the including file win; the rest point into the base file.
    merged_lines = {k: v for k, v in base_lines.items()}
    merged_lines.update(lines)
    return merged, merged_lines, path


def load_suite(path: str | Path, profile: str | None = None, overrides: list[str] | tuple[str, ...] = (),
               check_registries: bool = True) -> Suite:
    """Read, include, apply the profile and ``--set`` overrides, then validate everything strictly."""
    path = Path(path)
    data, lines = _read(path)
    data, lines, path = _merge_include(data, lines, path)
    where = _Where(path, lines)
    _check_mapping(data, TOP_KEYS, (), where, required=REQUIRED_TOP)

    profiles = data.get("profiles") or {}
    for name, body in profiles.items():
        problem = path_name_problem(name)
        if problem:  # the default --out is runs/<suite>/<profile>
            raise where.error(("profiles", name), f"profile name {name!r} {problem}; choose a plain name.")
        if not isinstance(body, dict):
            raise where.error(("profiles", name), f"a profile is a mapping of KEY: VALUE overrides, got "
                                                  f"{type_name(body)}.")
    profile = profile or data.get("default_profile") or DEFAULT_PROFILE
    if profile != DEFAULT_PROFILE and profile not in profiles:
        names = list(dict.fromkeys([DEFAULT_PROFILE, *profiles]))  # 'paper' may also be written out
        close = difflib.get_close_matches(profile, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{path}: unknown profile {profile!r}.{hint} This suite's profiles: {', '.join(names)}.")

    data = copy.deepcopy(data)
    origin: dict[KeyPath, str] = {}
    applied: list[str] = []
    for key, value in (profiles.get(profile) or {}).items():
        label = f"{path}: profile {profile!r}, key {key!r}"
        resolved = apply_override(data, str(key), copy.deepcopy(value), label)
        origin[resolved] = f"profile {profile!r}"
        applied.append(f"profile:{key}={value!r}")
    for text in overrides:
        key, value = parse_override(text)
        resolved = apply_override(data, key, value, f"--set {text!r}")
        origin[resolved] = f"--set {text}"
        applied.append(f"set:{key}={value!r}")
    where = _Where(path, lines, origin)
    suite = _validate(data, path, profile, tuple(applied), tuple(profiles), where)
    if check_registries:
        _check_registries(suite, data, where)
    return suite


def _validate(data: dict, path: Path, profile: str, applied: tuple[str, ...], profile_names: tuple[str, ...],
              where: _Where) -> Suite:
    _check_mapping(data, TOP_KEYS, (), where, required=REQUIRED_TOP)
    problem = path_name_problem(data["suite"])
    if problem:  # the default --out is runs/<suite>/<profile>
        raise where.error(("suite",), f"suite name {data['suite']!r} {problem}; choose a plain name.")
    methods_raw = data["methods"]
    benchmarks_raw = data["benchmarks"]
    settings_raw = data.get("settings") or [{"name": DEFAULT_SETTING}]
    for section, raw in (("methods", methods_raw), ("benchmarks", benchmarks_raw)):
        if not raw:
            raise where.error((section,), "must list at least one entry.")

    methods: list[dict] = []
    for i, item in enumerate(methods_raw):
        if isinstance(item, str):
            item = {"name": item}
        _check_mapping(item, METHOD_KEYS, ("methods", i), where)
        methods.append({"method": item["name"], "options": {}, **item})
    _check_names_unique(methods, "methods", where)

    benchmarks: list[dict] = []
    for i, item in enumerate(benchmarks_raw):
        _check_mapping(item, BENCHMARK_KEYS, ("benchmarks", i), where, required=("name", "task"))
        for key, value in (item.get("slurm") or {}).items():
            problem = resource_problem(key, value)
            if problem:
                raise where.error(("benchmarks", i, "slurm", key), problem)
        benchmarks.append({"dataset": None, "options": {}, "method_options": {}, **item})
    _check_names_unique(benchmarks, "benchmarks", where)

    settings: list[dict] = []
    for i, item in enumerate(settings_raw):
        if isinstance(item, str):
            item = {"name": item}
        _check_mapping(item, SETTING_KEYS, ("settings", i), where)
        settings.append(item)
    _check_names_unique(settings, "settings", where)

    return Suite(
        name=data["suite"],
        path=path,
        profile=profile,
        methods=tuple(MethodRow(**freeze(m)) for m in methods),
        benchmarks=tuple(Benchmark(**freeze(b)) for b in benchmarks),
        settings=tuple(Setting(**freeze(s)) for s in settings),
        defaults=freeze(data.get("defaults") or {}),
        table=data.get("table"),
        description=data.get("description", ""),
        profiles=profile_names,
        overrides=applied,
        threads=_threads(data.get("threads"), where),
    )


MAX_THREADS = 1024  # torch would try to start them all


def _threads(value: int | None, where: _Where) -> int | None:
    if value is not None and not 1 <= value <= MAX_THREADS:
        raise where.error(("threads",), f"threads must be a positive integer (at most {MAX_THREADS}), got {value}.")
    return value


def _check_registries(suite: Suite, data: dict, where: _Where) -> None:
    from .errors import RegistryError
    from .registries import DATASETS, METHODS, TASKS

    def index_of(section: str, name: str) -> int:
        for i, item in enumerate(data[section]):
            if (item if isinstance(item, str) else item.get("name")) == name:
                return i
        return 0

    for row in suite.methods:
        key = "method" if row.method != row.name else "name"
        if row.method not in METHODS:
            raise where.error(("methods", index_of("methods", row.name), key), METHODS.unknown_message(row.method))
    for bench in suite.benchmarks:
        i = index_of("benchmarks", bench.name)
        if bench.task not in TASKS:
            raise where.error(("benchmarks", i, "task"), TASKS.unknown_message(bench.task))
        if bench.dataset is not None and bench.dataset not in DATASETS:
            try:
                DATASETS.entry(bench.dataset)
            except RegistryError as exc:
                raise where.error(("benchmarks", i, "dataset"), str(exc)) from None
