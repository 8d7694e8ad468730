"""Vocabulary: RabbitMQ's names and AMQP's header-value rules, defined once.

Everything that must agree between the router, the topology validator, the AMQP and the
memory transports and ``burrowmq topology route`` reads it from here: the exchange types,
the predeclared exchanges, the queue types, the ``x-match`` modes, the direct reply-to
pseudo-queue, the reserved ``amq.`` prefix, and which Python values an AMQP field table
(message headers, declaration arguments) can carry.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import re
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
    "STREAM_REFUSED_ARGUMENTS",
    "X_MATCH_MODES",
    "HeadersMatch",
    "QueueType",
    "carried",
    "direct_reply_to_node",
    "direct_reply_to_problem",
    "header_problem",
    "name_problem",
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

STREAM_REFUSED_ARGUMENTS: Final = (
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-delivery-limit",
    "x-expires",
    "x-max-length",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-single-active-consumer",
)
"""Queue arguments RabbitMQ refuses on a stream (3.10 and 4.x: "invalid arg"); a stream
cannot dead-letter, expire, cap by count or prioritise."""

HeadersMatch = Literal["all", "any", "all-with-x", "any-with-x"]
X_MATCH_MODES: Final = ("all", "any", "all-with-x", "any-with-x")
"""The values of a headers binding's ``x-match`` argument."""

DIRECT_REPLY_TO: Final = "amq.rabbitmq.reply-to"
"""RabbitMQ's direct reply-to pseudo-queue (RPC replies without a reply queue)."""

NAME_PATTERN: Final = re.compile(r"[a-zA-Z0-9\-_.:@#,/+ ]*")
"""What an exchange or queue name may hold: AMQP's name domain, as pamqp enforces it."""
NAME_MAX: Final = 127

RESERVED_PREFIX: Final = "amq."
"""Exchange and queue names starting with it belong to the broker."""

_KEY_MAX = 128  # AMQP field names; pamqp silently cuts longer ones
_LONGSTR_MAX = 4_294_967_295
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_DECIMAL_SCALE_MAX = 255
_DECIMAL_MANTISSA = 2**31
_CARRIED = "str, int, float, bool, Decimal, datetime, bytearray, None, and lists and dicts of these"


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

    Carried: ``str`` (up to 4 GiB of UTF-8), ``int`` (64-bit signed), ``float`` (as a
    64-bit double), ``bool``,
    ``Decimal`` (32-bit digits, scale up to 255), timezone-aware or naive ``datetime``
    and ``time.struct_time`` (as epoch seconds), ``bytearray``, ``None`` (void), and
    lists and dicts (string keys of up to 128 bytes) of these.

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
        # Sent as a 64-bit double; RabbitMQ 4 closes the connection on NaN and infinity.
        if value != value or value in (float("inf"), float("-inf")):
            return f"holds the float {value!r}, which RabbitMQ refuses (not a finite number)"
        return None
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
    if len(key.encode("utf-8")) > _KEY_MAX:
        return f"holds a table key longer than 128 bytes ({key[:40]!r}...)"
    return None


def header_problem(headers: Mapping[str, Any] | None) -> str | None:
    """Name the first header AMQP cannot carry and say why, or ``None`` when all can.

    Returns:
        e.g. ``"header 'ids' holds a set, which AMQP headers cannot carry (use ...)"``.
    """
    if not headers:
        return None
    for key, value in headers.items():
        if not isinstance(key, str) or len(key.encode("utf-8")) > _KEY_MAX:
            return f"header name {str(key)[:40]!r} is not a string of at most 128 bytes"
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


def carried(headers: Mapping[Any, Any]) -> dict[str, Any]:
    """``headers`` made fit for the wire: what AMQP can carry kept, the rest converted.

    For copies of received messages (dead letters, delayed retries), whose headers may
    hold what pamqp decodes but cannot encode again: ``bytes`` (a long string that was
    not UTF-8) become a ``bytearray``, any other value AMQP cannot carry its ``repr``
    (cut to 1,000 characters), and header names that are not strings of at most 128
    bytes are dropped.
    """
    kept: dict[str, Any] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or len(key.encode("utf-8", "surrogatepass")) > _KEY_MAX:
            continue
        kept[key] = _carried_value(value)
    return kept


def _carried_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, list):
        return [_carried_value(item) for item in value]
    if isinstance(value, dict):
        return carried(value)
    if value_problem(value) is not None:
        return repr(value)[:1000]
    return value


def name_problem(name: object, kind: str = "exchange") -> str | None:
    """Why ``name`` cannot be sent as an exchange or queue name, or ``None``.

    AMQP names are at most 127 characters of letters, digits and ``-_.:@#,/+`` and space.
    """
    if not isinstance(name, str):
        return f"{kind} names are strings, got {name!r}"
    if len(name) > NAME_MAX:
        return f"{kind} name {name[:40]!r}... is longer than {NAME_MAX} characters"
    if NAME_PATTERN.fullmatch(name) is None:
        bad = next(c for c in name if NAME_PATTERN.fullmatch(c) is None)
        return (
            f"{kind} name {name!r} holds {bad!r}; names may hold letters, digits, "
            "space and - _ . : @ # , / +"
        )
    return None


_ETF_VERSION, _NEW_PID_EXT, _PID_EXT = 131, 88, 103
_ATOMS = {118: 2, 119: 1, 100: 2, 115: 1}  # ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT, ATOM, SMALL
_REPLY_NODE = re.compile(rb"reply@[0-9]+")
_KEY = re.compile(r"[A-Za-z0-9+/=_-]+")


def _pid_problem(raw: bytes) -> str | None:
    """Whether ``raw`` is an Erlang external-term pid on a direct reply-to node."""
    if len(raw) < 4 or raw[0] != _ETF_VERSION or raw[1] not in (_NEW_PID_EXT, _PID_EXT):
        return "its address is not an Erlang process id"
    width = _ATOMS.get(raw[2])
    if width is None:
        return "its address does not name a node"
    length = int.from_bytes(raw[3 : 3 + width], "big")
    node = raw[3 + width : 3 + width + length]
    rest = len(raw) - (3 + width + length)
    if len(node) != length or rest != (12 if raw[1] == _NEW_PID_EXT else 9):
        return "its address is cut short or too long"
    if _REPLY_NODE.fullmatch(node) is None:
        return "its address names no direct reply-to node"
    return None


def direct_reply_to_problem(address: str) -> str | None:
    """Why a direct reply-to address would be refused by RabbitMQ, or ``None``.

    RabbitMQ gives each consumer of ``amq.rabbitmq.reply-to`` an address of the form
    ``amq.rabbitmq.reply-to.<base64 of a process id>.<key>``; RabbitMQ 3.x decodes it
    without guarding, and closes the whole connection of whoever publishes to a malformed
    one. This checks the form strictly (one dot between the two parts, canonical base64
    of an Erlang pid on a ``reply@<hash>`` node, a base64 key), so that a reply to a
    hostile address is refused locally.

    Returns:
        e.g. ``"its address is not valid base64"``; ``None`` for a well-formed address.
    """
    prefix = DIRECT_REPLY_TO + "."
    if not address.startswith(prefix):
        return f"it does not start with {prefix!r}"
    suffix = address[len(prefix) :]
    encoded, dot, key = suffix.partition(".")
    if not dot or not encoded or not key or "." in key or _KEY.fullmatch(key) is None:
        return "it is not <address>.<key>"
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "its address is not valid base64"
    if base64.b64encode(raw).decode("ascii") != encoded:
        return "its address is not canonical base64"
    return _pid_problem(raw)


def direct_reply_to_node(address: str) -> bytes | None:
    """The ``reply@<hash>`` node a well-formed direct reply-to address names, or ``None``."""
    if direct_reply_to_problem(address) is not None:
        return None
    raw = base64.b64decode(address[len(DIRECT_REPLY_TO) + 1 :].partition(".")[0])
    width = _ATOMS[raw[2]]
    length = int.from_bytes(raw[3 : 3 + width], "big")
    return raw[3 + width : 3 + width + length]
