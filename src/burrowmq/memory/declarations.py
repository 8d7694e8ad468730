"""Declarations in the in-memory broker: what RabbitMQ accepts, refuses and compares.

A redeclaration must be equivalent to what exists, or the broker answers 406
PRECONDITION_FAILED naming the differing argument; these checks say which, in the same
words as the AMQP transport's :class:`~burrowmq.TopologyError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from burrowmq.exceptions import TopologyError
from burrowmq.framework.matching import BindingSpec
from burrowmq.framework.vocabulary import (
    EXCHANGE_TYPES,
    QUEUE_TYPES,
    RESERVED_PREFIX,
    STREAM_REFUSED_ARGUMENTS,
)

__all__ = [
    "MemoryExchange",
    "binding_key",
    "check_exchange",
    "check_new_exchange",
    "check_new_queue",
    "check_queue",
]

MODELLED_QUEUE_TYPES: Final = frozenset({"classic", "quorum", "stream"})
# The queue arguments RabbitMQ compares on redeclare; any other argument is ignored.
CHECKED_QUEUE_ARGUMENTS: Final = (
    "x-queue-type",
    "x-message-ttl",
    "x-expires",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-delivery-limit",
    "x-single-active-consumer",
    "x-queue-mode",
    "x-queue-version",
)


@dataclasses.dataclass(slots=True)
class MemoryExchange:
    """An exchange and the settings it was declared with."""

    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def alternate_exchange(self) -> str | None:
        """The ``alternate-exchange`` argument, if any."""
        value = self.arguments.get("alternate-exchange")
        return value if isinstance(value, str) else None


def _same(a: Any, b: Any) -> bool:
    # AMQP carries the type: 1 is not True, and 1 is not "1".
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and bool(a == b)


def _show(value: Any) -> str:
    return "none" if value is None else repr(value)


def _inequivalent(entity: str, argument: str, current: Any, received: Any) -> TopologyError:
    return TopologyError(
        f"{entity} exists on the broker with {argument}={_show(current)}, but this "
        f"declaration asks for {argument}={_show(received)}; burrowmq never deletes or "
        "recreates it on its own: change the declaration or delete the entity on the broker",
        entity=entity,
        argument=argument,
    )


def check_new_exchange(name: str, type: str) -> None:
    """Refuse an exchange type the memory broker does not know (RabbitMQ: 503).

    Raises:
        TopologyError: an unknown type.
    """
    if type not in EXCHANGE_TYPES:
        raise TopologyError(
            f"exchange {name!r} was refused: COMMAND_INVALID - invalid exchange type {type!r} "
            "(the memory transport knows direct, fanout, topic and headers)",
            entity=f"exchange {name!r}",
            argument="type",
        )


def check_exchange(
    current: MemoryExchange,
    type: str,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    arguments: Mapping[str, Any],
) -> None:
    """Check a redeclaration against the exchange that exists.

    Raises:
        TopologyError: a setting or the ``alternate-exchange`` differs.
    """
    entity = f"exchange {current.name!r}"
    for argument, have, want in (
        ("type", current.type, type),
        ("durable", current.durable, durable),
        ("auto_delete", current.auto_delete, auto_delete),
        ("internal", current.internal, internal),
        (
            "alternate-exchange",
            current.arguments.get("alternate-exchange"),
            arguments.get("alternate-exchange"),
        ),
    ):
        if not _same(have, want):
            raise _inequivalent(entity, argument, have, want)


def check_new_queue(
    name: str, durable: bool, exclusive: bool, auto_delete: bool, arguments: Mapping[str, Any]
) -> None:
    """Refuse a queue RabbitMQ would refuse: a reserved name, a bad type or setting.

    Raises:
        TopologyError: what is wrong, naming the argument.
    """
    entity = f"queue {name!r}"
    if name.startswith(RESERVED_PREFIX):
        raise TopologyError(
            f"{entity} was refused: ACCESS_REFUSED - queue name {name!r} contains "
            "reserved prefix 'amq.*'",
            entity=entity,
        )
    kind = arguments.get("x-queue-type", "classic")
    if kind not in QUEUE_TYPES:
        raise TopologyError(
            f"{entity} was refused: PRECONDITION_FAILED - invalid x-queue-type {kind!r} "
            f"(one of {', '.join(QUEUE_TYPES)})",
            entity=entity,
            argument="x-queue-type",
        )
    if kind not in MODELLED_QUEUE_TYPES:
        raise TopologyError(
            f"{entity}: x-queue-type {kind!r} is not modelled by the memory transport "
            "(classic, quorum and stream are)",
            entity=entity,
            argument="x-queue-type",
        )
    flaws = (
        ("non-durable", not durable),
        ("exclusive-owner", exclusive),
        ("auto-delete", auto_delete),
    )
    for flaw, present in flaws:
        if kind in ("quorum", "stream") and present:
            raise TopologyError(
                f"{entity} was refused: PRECONDITION_FAILED - invalid property {flaw!r} "
                f"for a {kind} queue",
                entity=entity,
                argument=flaw,
            )
    if kind == "stream":
        for argument in STREAM_REFUSED_ARGUMENTS:
            if argument in arguments:
                raise TopologyError(
                    f"{entity} was refused: PRECONDITION_FAILED - invalid arg {argument!r} "
                    "for queue type rabbit_stream_queue",
                    entity=entity,
                    argument=argument,
                )
    overflow = arguments.get("x-overflow", "drop-head")
    if overflow not in ("drop-head", "reject-publish", "reject-publish-dlx"):
        raise TopologyError(
            f"{entity} was refused: invalid x-overflow {overflow!r}",
            entity=entity,
            argument="x-overflow",
        )


def check_queue(
    name: str,
    current: tuple[bool, bool, Mapping[str, Any]],
    durable: bool,
    auto_delete: bool,
    arguments: Mapping[str, Any],
) -> None:
    """Check a redeclaration against the queue that exists (``durable, auto_delete, args``).

    Raises:
        TopologyError: a setting or a compared argument differs.
    """
    entity = f"queue {name!r}"
    have_durable, have_auto_delete, have_args = current
    if have_durable != durable:
        raise _inequivalent(entity, "durable", have_durable, durable)
    if have_auto_delete != auto_delete:
        raise _inequivalent(entity, "auto_delete", have_auto_delete, auto_delete)
    for argument in CHECKED_QUEUE_ARGUMENTS:
        have, want = have_args.get(argument), arguments.get(argument)
        if argument == "x-queue-type" and {have, want} <= {None, "classic"}:
            continue  # no type means classic (RabbitMQ 3.10's default)
        if not _same(have, want):
            raise _inequivalent(entity, argument, have, want)


def binding_key(b: BindingSpec) -> tuple[Any, ...]:
    """The identity of a binding: binding the same thing twice is one binding."""
    args = tuple(sorted((k, type(v).__name__, repr(v)) for k, v in b.arguments.items()))
    return (b.source, b.destination_type, b.destination, b.routing_key, args)
