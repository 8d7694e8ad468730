"""Messages in the in-memory broker: as stored, as the wire would carry them, dead-lettered.

Header values are kept as the AMQP wire would carry them (pamqp's rules), so a handler
sees in memory what it would see from RabbitMQ; a dead-lettered copy gets ``x-death``
as RabbitMQ records it.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import decimal
import time
from typing import Any

from burrowmq.framework.transport import Properties

__all__ = [
    "PublishRecord",
    "StoredMessage",
    "as_sent",
    "delivered_copy",
    "parse_expiration",
    "with_death",
]


@dataclasses.dataclass(slots=True, eq=False)
class StoredMessage:
    """A message in a queue.

    Attributes:
        body: the body.
        properties: the properties, as the broker received them.
        exchange: the exchange it was published (or dead-lettered) to.
        routing_key: its routing key.
        seq: its place in publish order; a requeued message goes back to this place.
        ttl: its effective time-to-live in milliseconds, once in a queue.
        expires_at: the broker clock's time at which it expires, if it does.
        redelivered: whether it was delivered before and came back.
        delivery_count: how many times it came back (``x-delivery-count`` of quorum queues).
    """

    body: bytes
    properties: Properties
    exchange: str
    routing_key: str
    seq: int
    ttl: int | None = None
    expires_at: float | None = None
    redelivered: bool = False
    delivery_count: int = 0


def parse_expiration(value: str | None) -> int | None:
    """The per-message TTL in milliseconds from an ``expiration`` property.

    Raises:
        ValueError: it is not a non-negative whole number, which RabbitMQ refuses.
    """
    if value is None:
        return None
    if not (isinstance(value, str) and value.isascii() and value.isdigit()):
        raise ValueError(f"invalid expiration {value!r}: expected milliseconds, e.g. '5000'")
    return int(value)


def _utc_seconds(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).replace(microsecond=0)


def _wire(key: str, value: Any) -> Any:
    """A header value as it comes back from the wire (pamqp encodes, RabbitMQ relays)."""
    if value is None or isinstance(value, bool | int | float | str | decimal.Decimal):
        return value  # floats travel as 64-bit doubles, exactly
    if isinstance(value, datetime.datetime):
        return _utc_seconds(value)
    if isinstance(value, time.struct_time):
        return datetime.datetime.fromtimestamp(calendar.timegm(value), datetime.UTC)
    if isinstance(value, bytearray):
        return bytearray(value)
    if isinstance(value, dict):
        return {str(k): _wire(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(key, v) for v in value]
    raise TypeError(f"header {key!r}: {type(value).__name__} is not an AMQP field value: {value!r}")


def as_sent(properties: Properties) -> Properties:
    """A copy of ``properties`` as RabbitMQ would hold them.

    The headers must be ones AMQP can carry (checked before, with
    :func:`~burrowmq.framework.vocabulary.header_problem`).
    """
    headers = {str(k): _wire(str(k), v) for k, v in properties.headers.items()}
    stamp = properties.timestamp
    return dataclasses.replace(
        properties,
        headers=headers,
        timestamp=None if stamp is None else _utc_seconds(stamp),
    )


def with_death(message: StoredMessage, queue: str, reason: str) -> Properties:
    """The properties of a dead-lettered copy, with ``x-death`` as RabbitMQ records it.

    ``x-death`` holds one entry per (queue, reason), most recent first, with a count;
    the ``x-first-death-*`` headers name the first death; the per-message expiration is
    removed (kept as the entry's ``original-expiration``).
    """
    props = message.properties
    headers = dict(props.headers)
    deaths = [dict(d) for d in headers.get("x-death", []) if isinstance(d, dict)]
    entry = next((d for d in deaths if d.get("queue") == queue and d.get("reason") == reason), None)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    if entry is None:
        entry = {
            "count": 0,
            "reason": reason,
            "queue": queue,
            "time": now,
            "exchange": message.exchange,
            "routing-keys": [message.routing_key],
        }
        if props.expiration is not None:
            entry["original-expiration"] = props.expiration
    else:
        deaths.remove(entry)
    entry["count"] = int(entry.get("count", 0)) + 1
    entry["time"] = now
    deaths.insert(0, entry)
    headers["x-death"] = deaths
    headers.setdefault("x-first-death-exchange", message.exchange)
    headers.setdefault("x-first-death-queue", queue)
    headers.setdefault("x-first-death-reason", reason)
    headers.pop("x-delivery-count", None)
    return dataclasses.replace(props, headers=headers, expiration=None)


def delivered_copy(properties: Properties) -> Properties:
    """The properties one delivery hands out: its own deep copy of the headers."""
    # Each delivery gets its own headers: a handler editing them changes no other copy.
    return dataclasses.replace(properties, headers=_deep(properties.headers))


def _deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class PublishRecord:
    """One message as a client published it, with the queues it reached.

    Attributes:
        exchange: the exchange published to (``""``: the default exchange).
        routing_key: the routing key.
        body: the body.
        properties: the properties, as the broker received them.
        queues: the queues that took a copy; empty when it was unroutable.
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: Properties
    queues: frozenset[str]
