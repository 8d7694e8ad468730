"""Options: what a route decorator's arguments name, as validated values.

Exchange and queue names (or values) with their ``*_options``, and routing keys, checked
the same way by every decorator of :class:`~burrowmq.routing.router.Router`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.vocabulary import RESERVED_PREFIX, STANDARD_EXCHANGES, name_problem
from burrowmq.topology.arguments import EXCHANGE_ARGUMENTS, QUEUE_ARGUMENTS, likely_meant
from burrowmq.topology.model import Exchange, Queue

__all__ = ["exchange_of", "keys_of", "queue_of"]

_QUEUE_FIELDS = {"durable", "auto_delete", "arguments", "type"}
_EXCHANGE_FIELDS = {"durable", "auto_delete", "internal", "arguments"}


def _options(kind: str, options: Mapping[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    options = dict(options or {})
    unknown = set(options) - allowed
    if unknown:
        raise ConfigurationError(
            f"{kind}_options got unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    return options


def _check_typos(what: str, arguments: Mapping[str, Any], rules: Mapping[str, Any]) -> None:
    """Refuse an argument name that is a likely typo of a known one: it would do nothing."""
    for argument in arguments:
        if argument not in rules and (meant := likely_meant(rules, argument)) is not None:
            raise ConfigurationError(
                f"{what}: {argument!r} is not an argument RabbitMQ knows: did you mean {meant}?"
            )


def exchange_of(name: str | Exchange, type: str, options: Mapping[str, Any] | None) -> Exchange:
    """The exchange a decorator names, of its ``type``.

    Raises:
        ConfigurationError: a bad name, a reserved one, a type mismatch or bad options.
    """
    if isinstance(name, Exchange):
        if name.type != type:
            raise ConfigurationError(
                f"exchange {name.name!r} has type {name.type!r} but is used with a {type} decorator"
            )
        if options:
            raise ConfigurationError("exchange_options= cannot be combined with an Exchange")
        return name
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"a {type} route needs an exchange name, got {name!r} "
            "(the default exchange cannot be bound: use router.consume(queue) instead)"
        )
    if (problem := name_problem(name, "exchange")) is not None:
        raise ConfigurationError(problem)
    if name.startswith(RESERVED_PREFIX) and STANDARD_EXCHANGES.get(name) != type:
        raise ConfigurationError(f"exchange names starting with 'amq.' are reserved: {name!r}")
    settings = _options("exchange", options, _EXCHANGE_FIELDS)
    _check_typos(f"exchange {name!r}", settings.get("arguments") or {}, EXCHANGE_ARGUMENTS)
    return Exchange(name=name, type=type, **settings)


def queue_of(
    queue: str | Queue | None,
    default_name: str | None,
    options: Mapping[str, Any] | None,
    dead_letter: str | bool | None,
) -> Queue | None:
    """The queue a decorator names (else ``default_name``; ``None`` for none), durable,
    quorum unless said otherwise, with its dead-letter exchange.

    Raises:
        ConfigurationError: a bad or reserved name, a non-durable named queue, bad options.
    """
    if isinstance(queue, Queue):
        if options:
            raise ConfigurationError("queue_options= cannot be combined with a Queue")
        return queue
    name = queue if queue is not None else default_name
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"queue= takes a non-empty name or a Queue, got {queue!r}")
    if (problem := name_problem(name, "queue")) is not None:
        raise ConfigurationError(problem)
    if name.startswith(RESERVED_PREFIX):
        raise ConfigurationError(f"queue names starting with 'amq.' are reserved: {name!r}")
    settings = _options("queue", options, _QUEUE_FIELDS)
    arguments = dict(settings.pop("arguments", {}))
    _check_typos(f"queue {name!r}", arguments, QUEUE_ARGUMENTS)
    queue_type = settings.pop("type", None)
    # Work queues are quorum queues unless the caller says otherwise (RabbitMQ 4 safe).
    arguments.setdefault("x-queue-type", queue_type or "quorum")
    if dead_letter is not False and arguments["x-queue-type"] != "stream":
        # (a stream cannot dead-letter: RabbitMQ refuses the argument on it)
        base = dead_letter if isinstance(dead_letter, str) else name
        arguments.setdefault("x-dead-letter-exchange", f"{base}.dlx")
    if settings.get("durable") is False:
        raise ConfigurationError(
            f"queue {name!r}: a named queue must be durable (RabbitMQ 4 refuses "
            "non-durable non-exclusive queues); omit queue= on a fanout route for a "
            "per-instance queue"
        )
    return Queue(name=name, arguments=arguments, **settings)


def keys_of(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    """A decorator's routing keys or patterns, as a tuple.

    Raises:
        ConfigurationError: none given, one that is not a string or is over 255 bytes.
    """
    keys = (value,) if isinstance(value, str) else tuple(value)
    if not keys:
        raise ConfigurationError(f"{what} needs at least one key")
    for key in keys:
        if not isinstance(key, str):
            raise ConfigurationError(f"{what} keys must be strings, got {key!r}")
        if len(key.encode()) > 255:
            raise ConfigurationError(f"{what} key longer than 255 bytes: {key[:40]!r}...")
    return keys
