"""Load YAML together with the line of every key, so validation errors can say where a key is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .paths import MAX_TEXT_BYTES as MAX_YAML_BYTES
from .paths import read_text_file

# Suites, profiles and references are a few KB; the bounds stop a hostile file before it costs memory: a 1 KB file
# of aliases nested nine deep expands to 10^9 nodes in any walk over the data (ours, json.dumps, deepcopy).
MAX_YAML_NODES = 100_000

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


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes a walk that follows aliases visits (each distinct node is counted once, in linear time)."""
    if id(node) in sizes:
        return sizes[id(node)]
    size = 1
    if isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = size
    return size


def _parse(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source} is {len(text)} characters long; YAML inputs are limited to {MAX_YAML_BYTES} "
                          f"(a suite or reference is a few KB). Check that it is the file you meant.")
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(f"{source}: its aliases (*name) expand to more than {MAX_YAML_NODES} values; write "
                              f"the values out (a suite needs no aliases).")
        return node, (loader.construct_document(node) if node is not None else None)
    except RecursionError:  # PyYAML composes recursively: thousands of nested brackets
        raise ConfigError(f"{source} is nested too deeply to parse; a suite or reference needs a few levels.") from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str = "YAML input") -> Any:
    """Parse YAML like every suite, profile and ``--set`` value: duplicate keys rejected, ``1e-3`` a number;
    size and alias expansion bounded (ConfigError naming ``source``)."""
    return _parse(text, source)[1]


def load_with_lines(text: str, source: str = "YAML input") -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text``; return the data and a map from key path to 1-based line number."""
    node, data = _parse(text, source)
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def read_yaml_file(path: Path, what: str = "suite file") -> tuple[Any, dict[KeyPath, int]]:
    """Read and parse a YAML file; raises OSError / yaml.YAMLError for the caller to word, ConfigError for an
    oversized, non-UTF-8 or alias-bomb file."""
    return load_with_lines(read_text_file(path, what), str(path))
