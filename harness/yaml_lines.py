"""Load YAML together with the line of every key, so validation errors can say where a key is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    """``("methods", 1, "options")`` -> ``methods[1].options``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys (plain YAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.2 floats: PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent, so `1e-3` and `5e3`
# would be strings and fail later as "can't multiply sequence by non-int". Added to this loader only.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML like every suite, profile and ``--set`` value: duplicate keys rejected, ``1e-3`` a number."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def load_with_lines(text: str) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text``; return the data and a map from key path to 1-based line number."""
    node = yaml.compose(text, Loader=_UniqueKeyLoader)
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    data = yaml.load(text, Loader=_UniqueKeyLoader)
    return data, lines


def read_yaml_file(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Read and parse a YAML file; raises OSError / yaml.YAMLError for the caller to word."""
    return load_with_lines(path.read_text(encoding="utf-8"))
