"""Dead letters and delayed retries: their names, their headers and their topology.

A route's failed messages go to the exchange ``<base>.dlx`` (fanout), bound to the
quorum queue ``<base>.dlq``; ``<base>`` is the queue's name unless the route's
``dead_letter=`` names another. A retry that waits long goes through a delay queue,
``<queue>.retry.<N>s``, whose messages expire back into the work queue. Delay queues
are a bounded set of tiers, ``N`` a power of two from 1 to 131,072 seconds (a wait is
rounded up to its tier, so no more than 18 per queue, and a jittered wait uses a few);
each is of its work queue's type (a quorum work queue's retries wait in a quorum queue)
and deletes itself after it went unused for twice its delay and a minute
(``x-expires``). The copies carry burrowmq's own headers, named here:

==========================  ==========================================================
``x-retry-count``           retries the message had (its attempt is one more)
``x-exception-type``        the exception's class name (or ``Reject``, ``DecodeError``)
``x-exception-message``     its message, or the rejection reason
``x-original-exchange``     where the message was first published
``x-original-routing-key``  with which routing key
``x-original-queue``        the queue it was consumed from
``x-undecodable-properties``  properties the AMQP library could not decode, raw
==========================  ==========================================================

Received headers are never trusted: a count out of range, an original exchange or
routing key that is not a string AMQP could carry, is ignored (:func:`retry_count`,
:func:`original`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from burrowmq.topology.model import Binding, Exchange, Queue, Topology

__all__ = [
    "HEADER_EXCEPTION_MESSAGE",
    "HEADER_EXCEPTION_TYPE",
    "HEADER_ORIGINAL_EXCHANGE",
    "HEADER_ORIGINAL_QUEUE",
    "HEADER_ORIGINAL_ROUTING_KEY",
    "HEADER_RETRY_COUNT",
    "HEADER_UNDECODABLE",
    "MAX_RETRY_COUNT",
    "dead_letter_exchange",
    "dead_letter_queue",
    "dead_letter_topology",
    "delay_arguments",
    "delay_queue",
    "delay_tier",
    "delay_topology",
    "original",
    "retry_count",
]

HEADER_RETRY_COUNT = "x-retry-count"
HEADER_EXCEPTION_TYPE = "x-exception-type"
HEADER_EXCEPTION_MESSAGE = "x-exception-message"
HEADER_ORIGINAL_EXCHANGE = "x-original-exchange"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"
HEADER_ORIGINAL_QUEUE = "x-original-queue"
HEADER_UNDECODABLE = "x-undecodable-properties"

MAX_RETRY_COUNT = 10_000
"""A larger ``x-retry-count`` is forged: no retry policy gets there."""


def dead_letter_exchange(base: str) -> str:
    """The dead-letter exchange of a route whose dead-letter base is ``base``."""
    return f"{base}.dlx"


def dead_letter_queue(base: str) -> str:
    """The dead-letter queue of a route whose dead-letter base is ``base``."""
    return f"{base}.dlq"


MAX_DELAY_TIER = 131_072
"""The longest delay tier, in seconds (about 36 hours); longer waits are cut to it."""


def delay_tier(seconds: float) -> int:
    """The tier a wait of ``seconds`` is rounded up to: a power of two, 1..131,072 s."""
    tier = 1
    while tier < seconds and tier < MAX_DELAY_TIER:
        tier *= 2
    return tier


def delay_queue(queue: str, tier: int) -> str:
    """The queue where retries of ``queue`` wait ``tier`` seconds before they return."""
    return f"{queue}.retry.{tier}s"


def delay_arguments(queue: str, tier: int, queue_type: str) -> dict[str, Any]:
    """The arguments of a delay queue of ``queue``: its type, delay, expiry, way back."""
    ttl = tier * 1000
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum" if queue_type == "quorum" else "classic",
        "x-message-ttl": ttl,
        "x-expires": 2 * ttl + 60_000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
    }
    if queue_type == "quorum":
        # A quorum queue dead-letters at most once unless told otherwise: a message
        # waiting out its retry must not be lost on the way back.
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


def delay_topology(
    queue: str, tiers: Iterable[int], queue_type: str, *, origin: str | None = None
) -> Topology:
    """The delay queues of ``queue`` for ``tiers``."""
    topology = Topology()
    for tier in sorted(set(tiers)):
        topology.add(
            Queue(
                name=delay_queue(queue, tier),
                arguments=delay_arguments(queue, tier, queue_type),
            ),
            origin=origin,
        )
    return topology


def dead_letter_topology(base: str, *, origin: str | None = None) -> Topology:
    """The exchange, queue and binding that hold a route's dead letters."""
    topology = Topology()
    exchange, queue = dead_letter_exchange(base), dead_letter_queue(base)
    topology.add(Exchange(name=exchange, type="fanout"), origin=origin)
    topology.add(Queue(name=queue, arguments={"x-queue-type": "quorum"}), origin=origin)
    topology.add(Binding(source=exchange, destination=queue), origin=origin)
    return topology


def retry_count(headers: Mapping[str, Any]) -> int:
    """The retries a delivery already had, from ``x-retry-count``.

    0 when absent, and when forged: not an int, or outside 1..:data:`MAX_RETRY_COUNT`.
    """
    value = headers.get(HEADER_RETRY_COUNT, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value if 0 < value <= MAX_RETRY_COUNT else 0


def original(headers: Mapping[str, Any], name: str, default: str) -> str:
    """The ``x-original-exchange`` or ``-routing-key`` header, if it is a fit one.

    A value that is not a string of at most 255 bytes (what AMQP carries as an exchange
    name or routing key) is forged or broken: ``default`` is used instead.
    """
    value = headers.get(name)
    if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) <= 255:
        return value
    return default
