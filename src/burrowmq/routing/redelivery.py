"""Redelivery: poison-message protection from the quorum queue's delivery count.

A message that crashes the worker process (or hangs it until it is killed) is never
settled: the broker hands it out again, and again. A handler exception cannot catch
this, and ``x-retry-count`` is never written, so the count has to come from the broker.
Quorum queues (burrowmq's default for work queues) count the failed deliveries of each
message and put that count in the ``x-delivery-count`` header of a redelivery: on
RabbitMQ 3.x and 4.0-4.2 every return (a consumer that died, a lost connection, a
requeue) counts; from 4.3 returns that are not failures (``basic.nack`` with requeue)
do not, which suits this check, as a consumer going away is still counted.

A consumer with ``max_redeliveries=N`` hands a message to its handler at most ``N + 1``
times; the delivery after that is dead-lettered (with the usual ``x-exception-*``
headers, type :class:`~burrowmq.TooManyRedeliveries`) instead of being handled. The broker's own
``x-delivery-limit`` queue argument stays the backstop: over it the broker dead-letters
the message itself, to the queue's ``x-dead-letter-exchange`` (burrowmq sets it on every
queue it declares), without burrowmq's headers. RabbitMQ 4 sets a delivery limit of 20
on every quorum queue; burrowmq's default of 10 acts first.

Classic queues keep no count (only the ``redelivered`` flag), so this protection needs
a quorum queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from burrowmq.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_MAX_REDELIVERIES",
    "HEADER_DELIVERY_COUNT",
    "check_max_redeliveries",
    "delivery_count",
]

HEADER_DELIVERY_COUNT = "x-delivery-count"
"""Set by quorum queues on redeliveries: the failed deliveries before this one."""

DEFAULT_MAX_REDELIVERIES = 10
"""Redeliveries allowed before a message is treated as poison (below RabbitMQ 4's 20)."""


def delivery_count(headers: Mapping[str, Any]) -> int:
    """The broker's count of failed deliveries of a message (0 when absent)."""
    value = headers.get(HEADER_DELIVERY_COUNT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def check_max_redeliveries(value: int | None) -> int | None:
    """Validate a ``max_redeliveries`` setting (``None`` turns the check off).

    Raises:
        ConfigurationError: not ``None`` and not an int of at least 0.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"max_redeliveries must be an int of at least 0, or None, got {value!r}"
        )
    return value
