"""Document: YAML (or JSON) parsed safely, remembering the line of every key and item.

Mappings and sequences come back as :class:`LocatedMapping` and :class:`LocatedSequence`,
plain ``dict`` and ``list`` subclasses that also know where they and their entries
were written, so that every problem can be reported as ``FILE:LINE: key.path: message``.
Keys given twice are remembered rather than silently overwritten.

A JSON document (a definitions export) is first checked by Python's JSON parser, so that
malformed JSON is reported as JSON, with line and column; it is then read by the same
YAML reader (JSON is YAML), which knows the line of every key.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from burrowmq.exceptions import TopologyProblem

__all__ = [
    "Entry",
    "JsonProblem",
    "LocatedMapping",
    "LocatedSequence",
    "NotJson",
    "Problems",
    "is_json",
    "item_line",
    "join_path",
    "key_line",
    "read_document",
    "strip_bom",
]

# The byte order marks RabbitMQ strips before it decodes a definitions file
# (rabbit_misc:strip_bom/1); UTF-32 LE must be tried before UTF-16 LE, its prefix.
_BOMS = (
    b"\xef\xbb\xbf",
    b"\xfe\xff",
    b"\xff\xfe\x00\x00",
    b"\xff\xfe",
    b"\x00\x00\xfe\xff",
)


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
    """The line ``key`` is written on in ``mapping`` (the mapping's own line if absent)."""
    if isinstance(mapping, LocatedMapping):
        return mapping.key_lines.get(key, mapping.line)
    return 1


def item_line(sequence: Any, index: int) -> int:
    """The line item ``index`` of ``sequence`` starts on (1 when unknown)."""
    if isinstance(sequence, LocatedSequence) and index < len(sequence.item_lines):
        return sequence.item_lines[index]
    return 1


def join_path(path: str, key: Any) -> str:
    """``path`` extended by a key (``a.key``) or a list index (``a[3]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


@dataclass(frozen=True, slots=True)
class JsonProblem(TopologyProblem):
    """A problem at a line and column: ``FILE:LINE:COLUMN: message`` (malformed JSON).

    Attributes:
        column: the 1-based column.
    """

    column: int = 1

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class NotJson(ValueError):
    """The text was taken for JSON and is not valid JSON.

    Attributes:
        reason: what the JSON parser expected, e.g. ``"Expecting ',' delimiter"``.
        line: the 1-based line.
        column: the 1-based column.
    """

    def __init__(self, reason: str, line: int, column: int) -> None:
        super().__init__(f"{line}:{column}: {reason}")
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(slots=True)
class Entry:
    """One entity of a document's section, as checked so far.

    Attributes:
        section: ``exchanges``, ``queues``, ``bindings`` or ``policies``.
        fields: the fields whose values are of the right kind.
        path: its key path, e.g. ``queues[3]``.
        line: the line it starts on.
        mapping: the mapping as read (for the lines of its keys).
        sound: no error was found in it.
    """

    section: str
    fields: dict[str, Any]
    path: str
    line: int
    mapping: Any
    sound: bool

    def line_of(self, *keys: str) -> int:
        """The line of a key inside the entity, e.g. ``line_of("arguments", "x-expires")``."""
        mapping = self.mapping
        for key in keys[:-1]:
            mapping = mapping.get(key) if isinstance(mapping, dict) else None
        return key_line(mapping, keys[-1])

    def value_at(self, *keys: str) -> Any:
        """The value under a key path of the entity as written, ``None`` when absent."""
        value = self.mapping
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value


class Problems:
    """The errors and warnings found in one file, each with its line and key path.

    Args:
        file: the file name problems are reported under.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[TopologyProblem] = []
        self.warnings: list[TopologyProblem] = []

    def error(self, line: int, path: str, message: str) -> None:
        """Record an error: the file does not load."""
        self.errors.append(TopologyProblem(self.file, line, path, message))

    def warn(self, line: int, path: str, message: str) -> None:
        """Record a warning: the file loads, but this is worth a look."""
        self.warnings.append(TopologyProblem(self.file, line, path, message))


def strip_bom(data: bytes) -> bytes:
    """``data`` without a leading byte order mark, as RabbitMQ reads definitions files."""
    for bom in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :]
    return data


def is_json(text: str, file: str) -> bool:
    """Whether to read ``text`` as JSON: a ``.json`` file, or text starting with ``{``.

    A file named ``.yaml`` or ``.yml`` is YAML even when it starts with ``{`` (YAML's
    flow style), which JSON's stricter rules would refuse.
    """
    name = file.lower()
    if name.endswith(".json"):
        return True
    if name.endswith((".yaml", ".yml")):
        return False
    return text.lstrip("\ufeff \t\r\n").startswith("{")


def read_document(text: str, *, json_text: bool = False) -> Any:
    """Parse YAML or JSON text with the safe loader, keeping line numbers.

    Args:
        text: the text.
        json_text: the text is JSON: malformed JSON raises :class:`NotJson`.

    Returns:
        Plain values, with :class:`LocatedMapping` and :class:`LocatedSequence` in place
        of ``dict`` and ``list``.

    Raises:
        NotJson: ``json_text`` and the text is not JSON.
        yaml.YAMLError: the text is not YAML.
    """
    text = text.removeprefix("\ufeff")
    if not json_text:
        return yaml.load(text, Loader=_Reader)  # safe: _Reader derives from SafeLoader
    if not text.strip():
        return None  # RabbitMQ imports an empty definitions file as no definitions
    try:
        plain = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotJson(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise NotJson("nested too deeply", 1, 1) from None
    try:
        # JSON strings never hold raw tabs, but YAML refuses them between tokens.
        located = yaml.load(text.replace("\t", " "), Loader=_Reader)
    except (yaml.YAMLError, RecursionError):
        located = None
    # Valid JSON that this YAML reader cannot take, or reads otherwise (YAML 1.1 takes
    # 1e5 for a string): JSON's values win, only the line numbers are lost.
    return located if located == plain else plain
