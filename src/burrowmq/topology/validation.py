"""Validation: what a topology document must hold, checked entry by entry.

The checks collect every problem (with line and key path) instead of stopping at the
first: unknown keys, wrong types, AMQP argument types, duplicate names, bindings to
undeclared exchanges and queues, headers bindings without ``x-match``, and what the
target broker refuses (RabbitMQ 4 unless ``x-burrowmq.rabbitmq`` says otherwise). What
is legal but dubious becomes a warning; what RabbitMQ's own import skips is skipped with
a warning (:mod:`burrowmq.topology.definitions`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from burrowmq.exceptions import TopologyProblem
from burrowmq.framework.vocabulary import (
    QUEUE_TYPES,
    STANDARD_EXCHANGES,
    STREAM_REFUSED_ARGUMENTS,
    X_MATCH_MODES,
    QueueType,
)
from burrowmq.topology.arguments import (
    EXCHANGE_ARGUMENTS,
    POLICY_KEYS,
    QUEUE_ARGUMENTS,
    ArgumentRule,
    check_argument,
)
from burrowmq.topology.definitions import (
    DEFAULT_RABBITMQ,
    SECTIONS,
    binding_skip,
    late_references,
    rabbitmq_version,
    select_vhost,
    skip_unimportable,
    version_problem,
)
from burrowmq.topology.document import (
    Entry,
    LocatedMapping,
    Problems,
    item_line,
    join_path,
    key_line,
)
from burrowmq.topology.fields import FIELDS, REQUIRED, describe, kind_error
from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Stream, Topology

__all__ = ["DEFINITIONS_KEYS", "EXTENSION_KEY", "Checked", "Settings", "check_document"]

EXTENSION_KEY = "x-burrowmq"
DEFINITIONS_KEYS = frozenset(
    {
        "rabbit_version",
        "rabbitmq_version",
        "product_name",
        "product_version",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
    }
)
"""Top-level keys of a definitions export that a topology accepts and ignores."""

_SETTINGS = ("version", "default_queue_type", "rabbitmq")


class Settings(BaseModel):
    """burrowmq's own settings, from the ``x-burrowmq`` key of a topology file.

    Args:
        version: the format version; only ``1`` exists.
        default_queue_type: the ``x-queue-type`` given to queues that set none (``None``
            leaves them to the broker's default, classic).
        rabbitmq: the RabbitMQ version the topology is for, such as ``"3.13"`` or
            ``"4.0"``; ``None`` is RabbitMQ 4.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    default_queue_type: QueueType | None = None
    rabbitmq: str | None = None

    @property
    def rabbitmq_major(self) -> int:
        """The major version of the target broker: 4 unless ``rabbitmq`` says 3.x."""
        return (rabbitmq_version(self.rabbitmq) or DEFAULT_RABBITMQ)[0]


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of checking a document.

    Attributes:
        settings: the ``x-burrowmq`` settings.
        topology: the topology, or ``None`` when there were errors.
        errors: every error, in file order.
        warnings: every warning, in file order.
    """

    settings: Settings
    topology: Topology | None
    errors: tuple[TopologyProblem, ...]
    warnings: tuple[TopologyProblem, ...]


class _Checker(Problems):
    def __init__(self, file: str, known: Topology | None) -> None:
        super().__init__(file)
        self.known = known or Topology()

    def repeated_keys(self, mapping: Any, path: str) -> None:
        if isinstance(mapping, LocatedMapping):
            for key, line in mapping.repeated:
                self.error(line, join_path(path, key), "key given twice (the last one would win)")

    # -- structure --

    def document(self, data: Any) -> tuple[Settings, dict[str, list[Entry]]]:
        sections: dict[str, list[Entry]] = {name: [] for name in SECTIONS}
        settings = Settings()
        if data is None:
            return settings, sections
        if not isinstance(data, dict):
            self.error(getattr(data, "line", 1), "", "the top level must be a mapping")
            return settings, sections
        self.repeated_keys(data, "")
        for key, value in data.items():
            line = key_line(data, key)
            if key in SECTIONS:
                sections[key] = self.section(key, value, line)
            elif key == EXTENSION_KEY:
                settings = self.settings(value, line)
            elif key not in DEFINITIONS_KEYS:
                expected = ", ".join([*SECTIONS, EXTENSION_KEY])
                self.error(line, str(key), f"unknown key; expected one of {expected}")
        return settings, sections

    def settings(self, value: Any, line: int) -> Settings:
        if value is None:
            return Settings()
        if not isinstance(value, dict):
            self.error(line, EXTENSION_KEY, f"must be a mapping, got {describe(value)}")
            return Settings()
        self.repeated_keys(value, EXTENSION_KEY)
        clean: dict[str, Any] = {}
        for key, item in value.items():
            path, where = join_path(EXTENSION_KEY, key), key_line(value, key)
            if key == "version":
                if item != 1 or isinstance(item, bool):
                    self.error(where, path, f"must be 1, got {describe(item)}")
                    continue
            elif key == "default_queue_type":
                if item not in QUEUE_TYPES or isinstance(item, bool):
                    choices = ", ".join(QUEUE_TYPES)
                    self.error(where, path, f"must be one of {choices}, got {describe(item)}")
                    continue
            elif key == "rabbitmq":
                if (problem := version_problem(item)) is not None:
                    self.error(where, path, problem)
                    continue
            else:
                self.error(where, path, f"unknown key; expected {', '.join(_SETTINGS)}")
                continue
            clean[key] = item
        return Settings(**clean)

    def section(self, name: str, value: Any, line: int) -> list[Entry]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(line, name, f"must be a list, got {describe(value)}")
            return []
        items = []
        for index, entry in enumerate(value):
            path, where = join_path(name, index), item_line(value, index)
            if not isinstance(entry, dict):
                self.error(where, path, f"must be a mapping, got {describe(entry)}")
                continue
            items.append(self.entity(name, entry, path, where))
        return items

    def entity(self, section: str, mapping: Any, path: str, line: int) -> Entry:
        spec = FIELDS[section]
        before = len(self.errors)
        self.repeated_keys(mapping, path)
        fields: dict[str, Any] = {}
        for key, value in mapping.items():
            key_path, where = join_path(path, key), key_line(mapping, key)
            kind = spec.get(key) if isinstance(key, str) else None
            if kind is None:
                self.error(where, key_path, f"unknown key; expected one of {', '.join(spec)}")
                continue
            problem = kind_error(kind, value)
            if problem:
                self.error(where, key_path, problem)
                continue
            fields[key] = value
        for required in REQUIRED[section]:
            if required not in mapping:
                self.error(line, join_path(path, required), "is required")
        return Entry(section, fields, path, line, mapping, sound=len(self.errors) == before)

    def arguments(
        self,
        item: Entry,
        field: str,
        rules: Mapping[str, ArgumentRule],
        what: str,
        major: int,
    ) -> None:
        values = item.fields.get(field) or {}
        parent = item.mapping.get(field)
        for name, value in values.items():
            path, line = join_path(join_path(item.path, field), name), key_line(parent, name)
            error, warning = check_argument(rules, name, value, what=what, major=major)
            if error:
                self.error(line, path, error)
                item.sound = False
            if warning:
                self.warn(line, path, warning)

    # -- meaning --

    def field_line(self, item: Entry, *keys: str) -> int:
        return item.line_of(*keys)

    def exchange(self, item: Entry, settings: Settings) -> None:
        major = settings.rabbitmq_major
        self.arguments(item, "arguments", EXCHANGE_ARGUMENTS, "exchange argument", major)

    def queue(self, item: Entry, settings: Settings) -> None:
        self.arguments(
            item, "arguments", QUEUE_ARGUMENTS, "queue argument", settings.rabbitmq_major
        )
        fields, path = item.fields, item.path
        arguments = fields.get("arguments") or {}
        declared_type = fields.get("type")
        argument_type = arguments.get("x-queue-type")
        if declared_type is not None and declared_type not in QUEUE_TYPES:
            self.error(
                self.field_line(item, "type"),
                join_path(path, "type"),
                f"must be one of {', '.join(QUEUE_TYPES)}, got {declared_type!r}",
            )
        elif declared_type and argument_type and declared_type != argument_type:
            self.error(
                self.field_line(item, "type"),
                join_path(path, "type"),
                f"{declared_type!r} contradicts arguments.x-queue-type {argument_type!r}",
            )
        queue_type = argument_type or declared_type or settings.default_queue_type or "classic"
        if queue_type == "stream":
            for argument in STREAM_REFUSED_ARGUMENTS:
                if argument in arguments:
                    self.error(
                        self.field_line(item, "arguments", argument),
                        join_path(join_path(path, "arguments"), argument),
                        "RabbitMQ refuses this argument on a stream (a stream cannot "
                        "dead-letter, expire, cap by count or prioritise; retention is "
                        "x-max-age and x-max-length-bytes)",
                    )
        partitions = fields.get("partitions")
        if partitions is not None and (queue_type != "stream" or partitions < 1):
            self.error(
                self.field_line(item, "partitions"),
                join_path(path, "partitions"),
                f"makes a super stream: needs x-queue-type stream and at least 1 partition "
                f"(got {queue_type!r}, {partitions!r})",
            )
        if fields.get("exclusive"):
            self.error(
                self.field_line(item, "exclusive"),
                join_path(path, "exclusive"),
                "exclusive queues belong to one connection and cannot be declared in a "
                "topology file (per-instance queues come from handlers)",
            )
        elif fields.get("durable") is False:
            line, where = self.field_line(item, "durable"), join_path(path, "durable")
            if queue_type in ("quorum", "stream"):
                self.error(line, where, f"{queue_type} queues must be durable")
            elif settings.rabbitmq_major >= 4:
                self.error(
                    line,
                    where,
                    "a queue that is not exclusive must be durable (RabbitMQ 4 refuses "
                    'non-durable non-exclusive queues; x-burrowmq.rabbitmq: "3.13" allows '
                    "them for RabbitMQ 3)",
                )
            else:
                self.warn(
                    line,
                    where,
                    "a non-durable queue that is not exclusive is deprecated: RabbitMQ 3 "
                    "declares it, RabbitMQ 4 refuses it",
                )
        if queue_type in ("quorum", "stream") and fields.get("auto_delete"):
            self.error(
                self.field_line(item, "auto_delete"),
                join_path(path, "auto_delete"),
                f"{queue_type} queues cannot be auto-delete",
            )

    def policy(self, item: Entry, settings: Settings) -> None:
        self.arguments(item, "definition", POLICY_KEYS, "policy key", settings.rabbitmq_major)
        definition = item.fields.get("definition")
        if definition is not None and not definition:
            line = self.field_line(item, "definition")
            self.error(line, join_path(item.path, "definition"), "must hold at least one key")
        pattern = item.fields.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                line = self.field_line(item, "pattern")
                self.warn(line, join_path(item.path, "pattern"), f"may not be a valid regex: {exc}")


def _check_meaning(checker: _Checker, sections: dict[str, list[Entry]], settings: Settings) -> None:
    skip_unimportable(checker, sections)
    for item in sections["exchanges"]:
        checker.exchange(item, settings)
    for item in sections["queues"]:
        checker.queue(item, settings)
    for item in sections["policies"]:
        checker.policy(item, settings)
    exchange_types = _check_duplicates(checker, sections["exchanges"], "exchange")
    queue_names = set(_check_duplicates(checker, sections["queues"], "queue"))
    _check_duplicates(checker, sections["policies"], "policy")
    known_exchanges = {e.name: e.type for e in checker.known.exchanges}
    exchange_types = {**STANDARD_EXCHANGES, **known_exchanges, **exchange_types}
    queue_names |= {q.name for q in checker.known.queues}
    late_references(checker, sections, exchange_types)
    seen_bindings: dict[tuple[Any, ...], int] = {}
    kept = []
    for item in sections["bindings"]:
        skipped = binding_skip(item)
        if skipped is not None:
            field, message = skipped
            checker.warn(checker.field_line(item, field), join_path(item.path, field), message)
            continue
        kept.append(item)
        if item.sound:
            _check_binding(checker, item, exchange_types, queue_names, seen_bindings)
    sections["bindings"] = kept


def _check_binding(
    checker: _Checker,
    item: Entry,
    exchange_types: Mapping[str, str],
    queue_names: set[str],
    seen: dict[tuple[Any, ...], int],
) -> None:
    fields, path = item.fields, item.path
    source = fields["source"]
    if source == "":
        line = checker.field_line(item, "source")
        checker.error(line, join_path(path, "source"), "the default exchange cannot be bound from")
    elif source not in exchange_types:
        line = checker.field_line(item, "source")
        checker.error(line, join_path(path, "source"), f"exchange {source!r} is not declared")
    destination = fields["destination"]
    destination_type = fields.get("destination_type", "queue")
    known = exchange_types if destination_type == "exchange" else queue_names
    if destination not in known:
        line = checker.field_line(item, "destination")
        checker.error(
            line,
            join_path(path, "destination"),
            f"{destination_type} {destination!r} is not declared",
        )
    arguments = fields.get("arguments") or {}
    if exchange_types.get(source) == "headers":
        match = arguments.get("x-match")
        if match is None:
            line = checker.field_line(item, "arguments") if "arguments" in fields else item.line
            checker.error(
                line,
                join_path(path, "arguments"),
                f"a binding to headers exchange {source!r} needs x-match "
                f"({', '.join(X_MATCH_MODES)})",
            )
        elif match not in X_MATCH_MODES:
            line = checker.field_line(item, "arguments", "x-match")
            checker.error(
                line,
                f"{path}.arguments.x-match",
                f"must be one of {', '.join(X_MATCH_MODES)}, got {describe(match)}",
            )
    key = (
        source,
        destination_type,
        destination,
        fields.get("routing_key", ""),
        repr(sorted(arguments.items())),
    )
    if key in seen:
        checker.warn(item.line, path, f"the same binding as on line {seen[key]}")
    else:
        seen[key] = item.line


def _check_duplicates(checker: _Checker, items: list[Entry], what: str) -> dict[str, str]:
    seen: dict[str, int] = {}
    types: dict[str, str] = {}
    for item in items:
        name = item.fields.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            checker.error(
                checker.field_line(item, "name"),
                join_path(item.path, "name"),
                f"{what} {name!r} is declared twice (first on line {seen[name]})",
            )
            continue
        seen[name] = checker.field_line(item, "name")
        types[name] = str(item.fields.get("type", "direct"))
    return types


def _build(file: str, sections: dict[str, list[Entry]], settings: Settings) -> Topology:
    topology = Topology()
    for item in sections["exchanges"]:
        topology.add(Exchange(**item.fields), origin=f"{file}:{item.line}")
    for item in sections["queues"]:
        fields = dict(item.fields)
        arguments = dict(fields.pop("arguments", {}))
        queue_type = arguments.get("x-queue-type") or fields.get("type")
        queue_type = queue_type or settings.default_queue_type
        if queue_type is not None:
            arguments["x-queue-type"] = queue_type
        if (partitions := fields.pop("partitions", None)) is not None:
            arguments.pop("x-queue-type", None)
            stream = Stream(name=fields["name"], partitions=partitions, arguments=arguments)
            topology.add(stream, origin=f"{file}:{item.line}")
            continue
        topology.add(Queue(arguments=arguments, **fields), origin=f"{file}:{item.line}")
    for item in sections["bindings"]:
        topology.add(Binding(**item.fields), origin=f"{file}:{item.line}")
    for item in sections["policies"]:
        topology.add(Policy(**item.fields), origin=f"{file}:{item.line}")
    return topology


def check_document(
    data: Any, *, file: str, known: Topology | None = None, vhost: str | None = None
) -> Checked:
    """Check a parsed topology document and build its :class:`Topology`.

    Args:
        data: what :func:`~burrowmq.topology.document.read_document` returned.
        file: the file name to report problems under.
        known: entities declared elsewhere that references may name.
        vhost: the virtual host to take from a file whose entities name several.

    Returns:
        The settings, the topology (``None`` on errors), the errors and the warnings.
    """
    checker = _Checker(file, known)
    settings, sections = checker.document(data)
    if select_vhost(checker, sections, vhost):
        _check_meaning(checker, sections, settings)
    topology = None if checker.errors else _build(file, sections, settings)

    def order(p: TopologyProblem) -> int:
        return p.line

    return Checked(
        settings,
        topology,
        tuple(sorted(checker.errors, key=order)),
        tuple(sorted(checker.warnings, key=order)),
    )
