"""Document: YAML (or JSON) parsed safely, remembering the line of every key and item.

Mappings and sequences come back as :class:`LocatedMapping` and :class:`LocatedSequence`,
plain ``dict`` and ``list`` subclasses that also know where they and their entries
were written, so that every problem can be reported as ``FILE:LINE: key.path: message``.
Keys given twice are remembered rather than silently overwritten.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import yaml

__all__ = [
    "LocatedMapping",
    "LocatedSequence",
    "item_line",
    "join_path",
    "key_line",
    "read_document",
]


class LocatedMapping(dict[Any, Any]):
    """A YAML mapping that remembers its own line, its keys' lines and repeated keys."""

    line: int = 1
    key_lines: dict[Any, int]
    repeated: list[tuple[Any, int]]


class LocatedSequence(list[Any]):
    """A YAML sequence that remembers its own line and its items' lines."""

    line: int = 1
    item_lines: list[int]


class _Reader(yaml.SafeLoader):
    """A safe loader that builds :class:`LocatedMapping` and :class:`LocatedSequence`."""


def _construct_mapping(loader: _Reader, node: yaml.MappingNode) -> Iterator[LocatedMapping]:
    data = LocatedMapping()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    data.repeated = []
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        if key in data.key_lines:
            data.repeated.append((key, line))
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line


def _construct_sequence(loader: _Reader, node: yaml.SequenceNode) -> Iterator[LocatedSequence]:
    data = LocatedSequence()
    data.line = node.start_mark.line + 1
    data.item_lines = []
    yield data
    for child in node.value:
        data.append(loader.construct_object(child, deep=True))
        data.item_lines.append(child.start_mark.line + 1)


_Reader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Reader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def key_line(mapping: Any, key: Any) -> int:
    if isinstance(mapping, LocatedMapping):
        return mapping.key_lines.get(key, mapping.line)
    return 1


def item_line(sequence: Any, index: int) -> int:
    if isinstance(sequence, LocatedSequence) and index < len(sequence.item_lines):
        return sequence.item_lines[index]
    return 1


def join_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def read_document(text: str) -> Any:
    """Parse YAML or JSON text with the safe loader, keeping line numbers.

    Args:
        text: the text.

    Returns:
        Plain values, with :class:`LocatedMapping` and :class:`LocatedSequence` in place
        of ``dict`` and ``list``.

    Raises:
        yaml.YAMLError: the text is not YAML.
    """
    return yaml.load(text, Loader=_Reader)  # safe: _Reader derives from SafeLoader
