"""Vocabulary: RabbitMQ's names and AMQP's header-value rules, defined once.

Everything that must agree between the router, the topology validator, the AMQP and the
memory transports and ``burrowmq topology route`` reads it from here: the exchange types,
the predeclared exchanges, the queue types, the ``x-match`` modes, the direct reply-to
pseudo-queue, the reserved ``amq.`` prefix, and which Python values an AMQP field table
(message headers, declaration arguments) can carry.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

from burrowmq.exceptions import PublishError

__all__ = [
    "DIRECT_REPLY_TO",
    "EXCHANGE_TYPES",
    "QUEUE_TYPES",
    "RESERVED_PREFIX",
    "STANDARD_EXCHANGES",
    "X_MATCH_MODES",
    "HeadersMatch",
    "QueueType",
    "as_float32",
    "header_problem",
    "unencodable",
    "value_problem",
]

EXCHANGE_TYPES: Final = ("direct", "fanout", "topic", "headers")
"""The exchange types AMQP 0-9-1 and every RabbitMQ node have."""

STANDARD_EXCHANGES: Final[Mapping[str, str]] = {
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
    "amq.rabbitmq.trace": "topic",
}
"""The exchanges every virtual host has, by name, with their types (the default ``""``
exchange, a direct one, aside)."""

QueueType = Literal["classic", "quorum", "stream"]
QUEUE_TYPES: Final = ("classic", "quorum", "stream")
"""The values of the ``x-queue-type`` argument."""

HeadersMatch = Literal["all", "any", "all-with-x", "any-with-x"]
X_MATCH_MODES: Final = ("all", "any", "all-with-x", "any-with-x")
"""The values of a headers binding's ``x-match`` argument."""

DIRECT_REPLY_TO: Final = "amq.rabbitmq.reply-to"
"""RabbitMQ's direct reply-to pseudo-queue (RPC replies without a reply queue)."""

RESERVED_PREFIX: Final = "amq."
"""Exchange and queue names starting with it belong to the broker."""

_SHORTSTR_MAX = 255
_LONGSTR_MAX = 4_294_967_295
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_DECIMAL_SCALE_MAX = 255
_DECIMAL_MANTISSA = 2**31
_CARRIED = "str, int, float, bool, Decimal, datetime, bytearray, None, and lists and dicts of these"


def as_float32(value: float) -> float:
    """``value`` as it arrives after travelling as a 32-bit AMQP float.

    A value too large for 32 bits cannot be sent at all (:func:`value_problem` says so);
    it is returned as it is, so that it stays comparable.
    """
    try:
        return float(struct.unpack(">f", struct.pack(">f", value))[0])
    except OverflowError:
        return value


def _float_problem(value: float) -> str | None:
    try:
        struct.pack(">f", value)
    except OverflowError:
        return f"holds the float {value!r}, too large for an AMQP float"
    return None


def _decimal_problem(value: decimal.Decimal) -> str | None:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        return f"holds the Decimal {value}, which is not a finite number"
    scale = max(0, -exponent)
    mantissa = int(value.scaleb(scale)) if exponent < 0 else int(value)
    if scale > _DECIMAL_SCALE_MAX or not -_DECIMAL_MANTISSA <= mantissa < _DECIMAL_MANTISSA:
        return (
            f"holds the Decimal {value}, which does not fit an AMQP decimal "
            "(32-bit digits, scale 0-255)"
        )
    return None


def value_problem(value: Any) -> str | None:
    """Why an AMQP field table cannot carry ``value``, or ``None`` when it can.

    Carried: ``str`` (up to 4 GiB of UTF-8), ``int`` (64-bit signed), ``float``, ``bool``,
    ``Decimal`` (32-bit digits, scale up to 255), timezone-aware or naive ``datetime``
    and ``time.struct_time`` (as epoch seconds), ``bytearray``, ``None`` (void), and
    lists and dicts (string keys of up to 255 bytes) of these.

    Returns:
        What is wrong, worded to follow a header name: e.g. ``"holds a set, which AMQP
        headers cannot carry (use str, int, ...)"``.
    """
    if value is None or isinstance(value, bool | bytearray | datetime.datetime | time.struct_time):
        return None
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return f"holds the int {value}, outside the 64-bit range AMQP carries"
        return None
    if isinstance(value, str):
        if len(value) > _LONGSTR_MAX // 4 and len(value.encode("utf-8")) > _LONGSTR_MAX:
            return "holds a string longer than AMQP's 4 GiB limit"
        return None
    if isinstance(value, float):
        return _float_problem(value)
    if isinstance(value, decimal.Decimal):
        return _decimal_problem(value)
    if isinstance(value, list):
        for item in value:
            if (problem := value_problem(item)) is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if (problem := _key_problem(key)) is not None:
                return problem
            if (problem := value_problem(item)) is not None:
                return problem
        return None
    return f"holds a {type(value).__name__}, which AMQP headers cannot carry (use {_CARRIED})"


def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return f"holds a table with the key {key!r}: field table keys must be strings"
    if len(key.encode("utf-8")) > _SHORTSTR_MAX:
        return f"holds a table key longer than 255 bytes ({key[:40]!r}...)"
    return None


def header_problem(headers: Mapping[str, Any] | None) -> str | None:
    """Name the first header AMQP cannot carry and say why, or ``None`` when all can.

    Returns:
        e.g. ``"header 'ids' holds a set, which AMQP headers cannot carry (use ...)"``.
    """
    if not headers:
        return None
    for key, value in headers.items():
        if not isinstance(key, str) or len(key.encode("utf-8")) > _SHORTSTR_MAX:
            return f"header name {str(key)[:40]!r} is not a string of at most 255 bytes"
        if (problem := value_problem(value)) is not None:
            return f"header {key!r} {problem}"
    return None


def unencodable(
    exchange: str, routing_key: str, headers: Mapping[str, Any] | None, fallback: str
) -> PublishError:
    """The error of a publish whose properties AMQP cannot carry, the same on every transport.

    Args:
        exchange: the exchange published to.
        routing_key: the routing key.
        headers: the message's headers; the first one at fault is named.
        fallback: what to say when no header is at fault (another property is).
    """
    problem = header_problem(headers) or f"a message property could not be encoded ({fallback})"
    return PublishError(
        f"cannot publish to exchange {exchange!r}: {problem}",
        exchange=exchange,
        routing_key=routing_key,
    )
