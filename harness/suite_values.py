"""The values of a suite: frozen (read-only) data, deep merges, and ``--set``/profile overrides.

Values are parsed by :func:`harness.yaml_lines.load_yaml`, which reads ``1e-3`` as a number (YAML 1.2, not
PyYAML's YAML 1.1), so a number in a suite file, a profile or ``--set`` is a number wherever it is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import yaml

from .errors import ConfigError
from .yaml_lines import KeyPath, format_path, load_yaml


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number",
            bool: "a boolean", type(None): "empty (null)"}.get(type(value), type(value).__name__)


# -- frozen values -------------------------------------------------------------------------------------
def freeze(value: Any) -> Any:
    """Deep-freeze plain YAML data (dict -> read-only mapping, list -> tuple)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: plain dicts and lists, ready for JSON."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def merge_options(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge option mappings; later layers win, nested mappings merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge_options(out[key], value)
            else:
                out[key] = thaw(value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=c"`` -> ``("a.b", <c parsed as a YAML scalar>)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set defaults.seed=1 or "
                          f"--set methods.deop.options.alpha=0.5.")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({exc}).") from None
    return key, value


def _resolve_segment(container: Any, segment: str, walked: list[str | int], label: str) -> str | int:
    if isinstance(container, list):
        for i, item in enumerate(container):
            if isinstance(item, dict) and item.get("name") == segment or item == segment:
                return i
        if segment.isdigit() and int(segment) < len(container):
            return int(segment)
        names = [it.get("name") if isinstance(it, dict) else it for it in container]
        raise ConfigError(f"{label}: {format_path(tuple(walked)) or 'the suite'} has no entry named {segment!r}. "
                          f"Known: {', '.join(map(str, names))}.")
    return segment


def apply_override(data: dict, key: str, value: Any, label: str) -> KeyPath:
    """Set ``key`` (dotted, list items by name) to ``value`` in ``data``; return the resolved key path.

    A mapping set over a mapping merges into it key by key (later layers win, as in :func:`merge_options`): a
    profile's ``defaults.train: {head: {iters: 30}}`` changes the head's iterations and keeps every other
    training setting of the suite file; set a key to another value (or null) to change or clear it."""
    segments = key.split(".")
    walked: list[str | int] = []
    node: Any = data
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        index = _resolve_segment(node, segment, walked, label)
        if isinstance(node, list) and isinstance(node[index], str):
            node[index] = {"name": node[index]}  # 'deop' shorthand -> mapping, so its keys can be set
        if last:
            if isinstance(node, dict) and isinstance(node.get(index), dict) and isinstance(value, dict):
                node[index] = merge_options(node[index], value)  # a mapping overrides key by key
            elif isinstance(node, dict | list):
                node[index] = value
            else:
                raise ConfigError(f"{label}: {format_path(tuple(walked))} is {type_name(node)}, not a mapping.")
        else:
            if isinstance(node, dict) and index not in node:
                node[index] = {}
            if not isinstance(node, dict | list):
                raise ConfigError(f"{label}: {format_path(tuple(walked))} is {type_name(node)}, not a mapping.")
            node = node[index]
        walked.append(index)
    return tuple(walked)
