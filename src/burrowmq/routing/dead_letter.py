"""Dead letters and retries: their names, their headers and their topology.

A route's failed messages go to the exchange ``<base>.dlx`` (fanout), bound to the
quorum queue ``<base>.dlq``; ``<base>`` is the queue's name unless the route's
``dead_letter=`` names another. A retry that waits long goes down the shared delay
ladder (:mod:`burrowmq.routing.delay`) and back into the work queue. The copies carry
burrowmq's own headers, named here:

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

from collections.abc import Mapping
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
