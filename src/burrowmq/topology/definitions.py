"""Definitions: what RabbitMQ's own import does with a definitions file, mirrored.

A definitions file that RabbitMQ imports (``rabbitmqctl import_definitions``, the
management API's ``POST /api/definitions``) loads as a topology too. These are the rules
of RabbitMQ's import (``deps/rabbit/src/rabbit_definitions.erl``) that the topology
checks follow:

- Exchanges and queues whose names start with ``amq.`` are skipped with a warning, never
  declared: the predeclared exchanges (``amq.direct``, ...) exist in every virtual host,
  and ``amq.gen-*`` queues are server-named queues of some connection. So is the default
  exchange ``""``. burrowmq also skips names the AMQP side cannot send
  (:func:`~burrowmq.framework.vocabulary.name_problem`), and any binding from or to a
  skipped name; bindings from the predeclared exchanges are kept, as they exist.
- ``alternate-exchange`` and dead-letter exchanges (arguments or policies) are looked up
  only when a message is routed or dead-lettered: one missing from the file is a
  warning. A binding needs both of its ends when it is created, so a missing one stays
  an error, as RabbitMQ's import fails then (``{resources_missing, ...}``).
- A file may hold entities of several virtual hosts; a topology is applied to one (the
  one of the broker URL), so :func:`select_vhost` picks it.
- The target broker decides some rules: RabbitMQ 4 refuses non-durable non-exclusive
  queues and policies with ``ha-*`` keys, which RabbitMQ 3 accepted (deprecated).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Final

from burrowmq.framework.vocabulary import RESERVED_PREFIX, STANDARD_EXCHANGES, name_problem
from burrowmq.topology.document import Entry, Problems

__all__ = [
    "DEFAULT_RABBITMQ",
    "SECTIONS",
    "binding_skip",
    "late_references",
    "rabbitmq_version",
    "select_vhost",
    "skip_unimportable",
    "unimportable",
    "version_problem",
]

SECTIONS: Final = ("exchanges", "queues", "bindings", "policies")
"""The sections of a definitions file that hold topology, in the order RabbitMQ reads them."""

DEFAULT_RABBITMQ: Final = (4, 0)
"""The broker version a topology targets unless ``x-burrowmq.rabbitmq`` says otherwise."""

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?")
_OLDEST = (3, 10)
_NEWEST_MAJOR = 4

Sections = dict[str, list[Entry]]


def rabbitmq_version(value: Any) -> tuple[int, int] | None:
    """The ``(major, minor)`` of a version string such as ``"3.13"`` or ``"4.0.5"``.

    Returns:
        ``None`` for anything else, or for a version burrowmq does not run on (before
        3.10, after 4.x).
    """
    if not isinstance(value, str) or (match := _VERSION.fullmatch(value)) is None:
        return None
    version = (int(match[1]), int(match[2]))
    if version < _OLDEST or version[0] > _NEWEST_MAJOR:
        return None
    return version


def version_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid ``x-burrowmq.rabbitmq``, or ``None`` when it is."""
    if rabbitmq_version(value) is not None:
        return None
    shown = "true" if value is True else "false" if value is False else repr(value)
    hint = " (quote it: YAML reads 3.10 as the number 3.1)" if isinstance(value, float) else ""
    return (
        f'must be a RabbitMQ version from "3.10" to "4.x", such as "3.10", "3.13", "4.0" or '
        f'"4.1", got {shown}{hint}'
    )


def unimportable(kind: str, name: str) -> str | None:
    """Why an exchange or queue called ``name`` is skipped rather than declared, or ``None``.

    Args:
        kind: ``"exchange"`` or ``"queue"``.
        name: its name.
    """
    if kind == "exchange" and name == "":
        return "the default exchange exists in every virtual host"
    if kind == "exchange" and name in STANDARD_EXCHANGES:
        return f"exchange {name!r} is predeclared in every virtual host"
    if name.startswith(RESERVED_PREFIX):
        return f"names starting with {RESERVED_PREFIX!r} belong to the broker"
    problem = name_problem(name, kind)
    if problem is not None:
        return f"{problem}, so AMQP cannot declare it"
    return None


def select_vhost(problems: Problems, sections: Sections, vhost: str | None) -> bool:
    """Keep the entities of one virtual host (and those that name none), in place.

    A file whose entities name one virtual host, or none, loads whole (there is nothing
    to choose; a warning says so when ``vhost`` names another). A file naming several
    needs ``vhost``: without it, or with one it does not name, that is an error naming
    the virtual hosts found.

    Args:
        problems: where errors and warnings go.
        sections: the entities by section; filtered in place.
        vhost: the virtual host asked for, if any.

    Returns:
        Whether one virtual host was found (else an error was recorded, and the
        entities of several virtual hosts are left together).
    """
    found: dict[str, tuple[int, str]] = {}  # each vhost named -> where it is named first
    for name in SECTIONS:
        for entry in sections[name]:
            value = entry.fields.get("vhost")
            if isinstance(value, str) and value not in found:
                found[value] = (entry.line_of("vhost"), f"{entry.path}.vhost")
    names = ", ".join(repr(v) for v in sorted(found))
    if len(found) <= 1:
        if vhost is not None and found and vhost not in found:
            (only,) = found
            line, path = found[only]
            problems.warn(
                line,
                path,
                f"the entities are in virtual host {only!r}, not {vhost!r}: all of them are "
                "loaded (they are declared in the virtual host of the broker URL)",
            )
        return True
    if vhost is None:
        first, second = list(found)[:2]
        line, path = found[second]
        problems.error(
            line,
            path,
            f"{second!r} differs from {first!r}: a topology file describes one virtual "
            f"host, and this one names {len(found)} ({names}); choose one with vhost= "
            "(burrowmq topology ... --vhost NAME)",
        )
        return False
    if vhost not in found:
        line, path = next(iter(found.values()))
        problems.error(
            line, path, f"no entity is in virtual host {vhost!r}; the file names {names}"
        )
        return False
    for name in SECTIONS:
        sections[name] = [e for e in sections[name] if e.fields.get("vhost") in (None, vhost)]
    return True


def skip_unimportable(problems: Problems, sections: Sections) -> None:
    """Drop, with a warning each, the exchanges and queues RabbitMQ's import skips.

    See :func:`unimportable`; their bindings go through :func:`binding_skip`.
    """
    for section, kind in (("exchanges", "exchange"), ("queues", "queue")):
        kept = []
        for entry in sections[section]:
            name = entry.fields.get("name")
            reason = unimportable(kind, name) if isinstance(name, str) else None
            if reason is None:
                kept.append(entry)
                continue
            problems.warn(
                entry.line_of("name"),
                f"{entry.path}.name",
                f"{kind} {name!r} skipped, never declared: {reason}",
            )
        sections[section] = kept


def binding_skip(entry: Entry) -> tuple[str, str] | None:
    """Whether a binding is skipped because one of its ends is never declared.

    Bindings from the default exchange are not skipped: RabbitMQ refuses them, and so
    does the binding check.

    Returns:
        ``(field, message)`` for the warning, or ``None`` to check the binding as usual.
    """
    source = entry.fields.get("source")
    if isinstance(source, str) and source and source not in STANDARD_EXCHANGES:
        reason = unimportable("exchange", source)
        if reason is not None:
            return (
                "source",
                f"binding skipped: its source exchange {source!r} is never declared ({reason})",
            )
    destination = entry.fields.get("destination")
    kind = str(entry.fields.get("destination_type", "queue"))
    if isinstance(destination, str) and not (
        kind == "exchange" and destination in STANDARD_EXCHANGES
    ):
        reason = unimportable(kind, destination)
        if reason is not None:
            return (
                "destination",
                f"binding skipped: its destination {kind} {destination!r} is never declared "
                f"({reason})",
            )
    return None


# What RabbitMQ resolves only when it routes: where the name is, what it is, and when.
_LATE: Final = (
    ("exchanges", ("arguments", "alternate-exchange"), "alternate exchange", "unroutable"),
    ("queues", ("arguments", "x-dead-letter-exchange"), "dead-letter exchange", "dead-lettered"),
    ("policies", ("definition", "alternate-exchange"), "alternate exchange", "unroutable"),
    ("policies", ("definition", "dead-letter-exchange"), "dead-letter exchange", "dead-lettered"),
)


def late_references(problems: Problems, sections: Sections, exchanges: Collection[str]) -> None:
    """Warn about alternate and dead-letter exchanges that are not declared.

    RabbitMQ looks them up only when a message is unroutable or dead-lettered (and drops
    the message when they do not exist then), so a file may name one declared elsewhere.

    Args:
        problems: where the warnings go.
        sections: the entities by section.
        exchanges: every exchange name that is declared (file, App, predeclared).
    """
    for section, keys, what, event in _LATE:
        for entry in sections[section]:
            value = entry.value_at(*keys)
            if isinstance(value, str) and value and value not in exchanges:
                problems.warn(
                    entry.line_of(*keys),
                    ".".join([entry.path, *keys]),
                    f"{what} {value!r} is not declared: RabbitMQ looks it up only when a "
                    f"message is {event}, and drops the message if it does not exist then",
                )
