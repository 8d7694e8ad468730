"""The one table that translates aio-pika's, aiormq's and pamqp's errors into burrowmq's.

Every call into those libraries that can fail is wrapped the same way::

    try:
        await channel.queue_declare(...)
    except Exception as exc:
        fail(exc, Context(DECLARE, "queue 'billing'"))

:func:`translate` looks the exception up in :data:`TABLE` by the operation it failed in
(the same library error means a different thing while declaring than while publishing)
and builds the error callers see, worded for people: what failed, on which entity,
exchange or routing key, and why. burrowmq's own errors pass through unchanged; anything
the table does not know becomes a :class:`~burrowmq.TransportError` naming its type, so
no raw library error reaches a caller. The library error stays the ``__cause__``.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NoReturn

import aiormq.exceptions as amqp_errors
from pamqp import commands as spec

from burrowmq.exceptions import (
    BrokerUnreachable,
    BurrowError,
    ConnectionLost,
    PublishError,
    PublishNacked,
    TopologyError,
    TransportError,
    Unroutable,
)
from burrowmq.framework.urls import mask_url, redact
from burrowmq.framework.vocabulary import name_problem, unencodable

__all__ = [
    "CONNECTION_ERRORS",
    "RECOVERY_ERRORS",
    "TABLE",
    "Context",
    "Operation",
    "describe_exc",
    "fail",
    "reply_text",
    "translate",
]


class Operation(Enum):
    """What burrowmq was doing when a library call failed."""

    CONNECT = "connect"
    CHANNEL = "open a channel"
    DECLARE = "declare"
    PUBLISH = "publish"
    CONSUME = "consume"


CONNECT, CHANNEL, DECLARE, PUBLISH, CONSUME = Operation


@dataclass(frozen=True, slots=True)
class Context:
    """What a failed call was about, for the words of the error.

    Attributes:
        operation: what was being done.
        what: the thing at fault, e.g. ``"queue 'billing'"`` or, for a connection, the
            masked target (``host:port (vhost '/') as user 'guest'``).
        vhost: the virtual host, for a connection.
        exchange: the exchange published to.
        routing_key: the routing key published with.
        requested: the arguments of a declaration (to name the value it asked for).
        timeout: the confirm timeout of a publish, in seconds.
    """

    operation: Operation
    what: str
    vhost: str = "/"
    exchange: str = ""
    routing_key: str = ""
    requested: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] | None = None
    timeout: float | None = None


CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp_errors.AMQPConnectionError,
    amqp_errors.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)
"""What the libraries raise when the connection under a call is gone."""

RECOVERY_ERRORS: tuple[type[BaseException], ...] = (
    TransportError,
    TopologyError,
    amqp_errors.AMQPError,
    *CONNECTION_ERRORS,
)
"""What may fail a reconnection or a consumer restore (it is then tried again)."""


def reply_text(exc: BaseException) -> str:
    """The broker's reply text carried by an AMQP error, else the error's own text."""
    for arg in exc.args:
        if isinstance(arg, spec.Channel.Close | spec.Connection.Close):
            return str(arg.reply_text)
        if isinstance(arg, str) and arg:
            return arg
    return str(exc) or type(exc).__name__


def describe_exc(exc: BaseException | None) -> str:
    """One line about why a connection or channel closed, with any password masked."""
    if exc is None:
        return "closed"
    text = reply_text(exc) if isinstance(exc, amqp_errors.AMQPError) else str(exc)
    return mask_url(text) or type(exc).__name__


_ARGUMENT = re.compile(r"inequivalent arg '([^']+)'")
_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'.*?received (.+?) but current is (.+)$")


_TYPE_WORDS = {
    "longstr": "a string",
    "shortstr": "a string",
    "long": "an integer",
    "signedint": "an integer",
    "short": "an integer",
    "byte": "an integer",
    "bool": "a boolean",
    "double": "a float",
    "float": "a float",
    "decimal": "a decimal",
    "table": "a table",
    "array": "a list",
    "timestamp": "a timestamp",
}
"""AMQP field-table type tags as RabbitMQ names them, in words a user knows."""


def _clean_value(text: str) -> tuple[str, str]:
    """Split RabbitMQ's "the value '5' of type 'long'" into ``("5", "long")``."""
    text = text.strip()
    match = re.fullmatch(r"the value '(.*)' of type '(\w+)'", text)
    if match:
        return match.group(1), match.group(2)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1], ""
    return text, ""


def _precondition(exc: BaseException, context: Context) -> BurrowError:
    """A 406 PRECONDITION_FAILED, naming the entity and argument and both values.

    RabbitMQ's reply text is limited to 255 bytes and long names cut it short, so the
    requested value comes from the declaration itself when the text lacks it. The
    field-table type tags (``longstr``) are shown only where the values alone read the
    same (``10`` a string against ``10`` an integer).
    """
    entity, text, requested = context.what, reply_text(exc), context.requested
    found = _ARGUMENT.search(text)
    if found is None:
        return TopologyError(f"{entity} was refused by the broker: {text}", entity=entity)
    argument = found.group(1)
    values = _INEQUIVALENT.search(text)
    if argument in requested:
        wanted = repr(requested[argument])
    else:
        wanted = repr(dict(requested.get("arguments") or {}).get(argument))
    current = "another value"
    if values:
        (wanted, wanted_type), (current, current_type) = (
            _clean_value(values.group(2)),
            _clean_value(values.group(3)),
        )
        if wanted == current:
            wanted += f" ({_TYPE_WORDS.get(wanted_type, wanted_type)})"
            current += f" ({_TYPE_WORDS.get(current_type, current_type)})"
    has = f"without {argument}" if current == "none" else f"with {argument}={current}"
    asks = f"no {argument}" if wanted == "none" else f"{argument}={wanted}"
    return TopologyError(
        f"{entity} exists on the broker {has}, but this declaration asks for {asks}; "
        "burrowmq never deletes or recreates it on its own: change the declaration or "
        "delete the entity on the broker",
        entity=entity,
        argument=argument,
    )


def _unreachable(
    reason: str, *, answered: bool = True
) -> Callable[[BaseException, Context], BurrowError]:
    def build(exc: BaseException, context: Context) -> BurrowError:
        return BrokerUnreachable(
            f"{context.what}: {reason}", targets=(context.what,), answered=answered
        )

    return build


def _open_refused(exc: BaseException, context: Context) -> BurrowError:
    """The broker closed the connection instead of opening the vhost.

    aiormq reports it as a frame it did not expect ("Expected one of
    ['Connection.OpenOk'], got <Connection.Close object at 0x...>") and drops the
    reply text; RabbitMQ closes so (530 NOT_ALLOWED) when the vhost does not exist or
    the user has no access to it.
    """
    if "Connection.OpenOk" in str(exc) and "Connection.Close" in str(exc):
        reason = f"vhost {context.vhost!r} does not exist or access to it is refused for this user"
        return BrokerUnreachable(
            f"{context.what}: {reason}", targets=(context.what,), answered=True
        )
    return _socket_failure(exc, context)


def _socket_failure(exc: BaseException, context: Context) -> BurrowError:
    # aiormq wraps a TLS failure in its own error: the ssl one is further down the chain.
    # The chain can loop (aiormq re-raises a stored exception while handling itself).
    found: BaseException | None = exc
    seen: set[int] = set()
    while found is not None and not isinstance(found, ssl.SSLError) and id(found) not in seen:
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    # A TLS handshake failed: something listens there and answered.
    answered = isinstance(found, ssl.SSLError)
    if not isinstance(found, ssl.SSLError):
        found = exc
    return BrokerUnreachable(
        f"{context.what}: {_os_text(found)}", targets=(context.what,), answered=answered
    )


_TLS_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate "
    "(TLS(cert_file=..., key_file=...))",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused this client's certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust the CA of this client's certificate",
    "WRONG_VERSION_NUMBER": "the broker does not speak TLS on this port",
    "CERTIFICATE_VERIFY_FAILED": "the broker's certificate could not be verified",
}


def _os_text(exc: BaseException) -> str:
    """What went wrong at the socket, in words (never "None")."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or "verification failed"
        if any(word in detail for word in ("local issuer", "self-signed", "self signed")):
            why = "it is signed by a CA this client does not trust (TLS(ca_file=...))"
        elif "Hostname mismatch" in detail or "IP address mismatch" in detail:
            why = "it is not valid for this host name (TLS(server_hostname=...))"
        else:
            why = detail
        return f"TLS: the broker's certificate was refused: {why} ({detail})"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        return f"TLS: {_TLS_REASONS.get(reason, reason or exc.strerror or type(exc).__name__)}"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _OBJECT_AT.sub(">", redact(text)) or type(exc).__name__


_OBJECT_AT = re.compile(r" object at 0x[0-9a-fA-F]+>")
"""A repr's memory address (``<Connection.Close object at 0x7f...>``): noise to a reader."""


def _publish_error(template: str) -> Callable[[BaseException, Context], BurrowError]:
    def build(exc: BaseException, context: Context) -> BurrowError:
        return PublishError(
            template.format(exchange=context.exchange, reason=reply_text(exc)),
            exchange=context.exchange,
            routing_key=context.routing_key,
        )

    return build


def _unsendable(exc: BaseException, context: Context) -> BurrowError:
    """What pamqp could not encode: the exchange name, the routing key or a header."""
    problem = name_problem(context.exchange, "exchange")
    if problem is None and len(context.routing_key.encode("utf-8", "surrogatepass")) > 255:
        problem = "the routing key is longer than 255 bytes"
    if problem is not None:
        return PublishError(
            f"cannot publish to exchange {context.exchange[:60]!r}: {problem}",
            exchange=context.exchange,
            routing_key=context.routing_key,
        )
    return unencodable(context.exchange, context.routing_key, context.headers, str(exc))


def _where(context: Context) -> str:
    return f"exchange {context.exchange!r}, routing key {context.routing_key!r}"


Builder = Callable[[BaseException, Context], BurrowError]
Rule = tuple[tuple[type[BaseException], ...], frozenset[Operation], Builder]
_ANY = frozenset(Operation)

TABLE: tuple[Rule, ...] = (
    # -- connecting: each becomes one reason of BrokerUnreachable ------------------------
    (
        (amqp_errors.ProbableAuthenticationError,),
        frozenset({CONNECT}),
        _unreachable("access refused (check user/password)"),
    ),
    (
        (amqp_errors.AuthenticationError,),
        frozenset({CONNECT}),
        _unreachable("authentication failed"),
    ),
    (
        (amqp_errors.ConnectionNotAllowed,),  # type: ignore[attr-defined,unused-ignore]
        frozenset({CONNECT}),
        _unreachable("vhost not found or not allowed"),
    ),
    ((TimeoutError,), frozenset({CONNECT}), _unreachable("timed out", answered=False)),
    ((amqp_errors.InvalidFrameError,), frozenset({CONNECT}), _open_refused),
    (
        (OSError, amqp_errors.AMQPError, ConnectionError),
        frozenset({CONNECT}),
        _socket_failure,
    ),
    (
        (ValueError, TypeError, KeyError),  # yarl/aio-pika refusing the URL itself
        frozenset({CONNECT}),
        lambda exc, c: BrokerUnreachable(f"{c.what}: not a valid AMQP URL", targets=(c.what,)),
    ),
    # -- declaring -------------------------------------------------------------------------
    ((amqp_errors.ChannelPreconditionFailed,), frozenset({DECLARE}), _precondition),
    (
        (amqp_errors.ChannelNotFoundEntity,),
        frozenset({DECLARE}),
        lambda exc, c: TopologyError(f"{c.what}: {reply_text(exc)}", entity=c.what),
    ),
    (
        (amqp_errors.ChannelAccessRefused,),
        frozenset({DECLARE}),
        lambda exc, c: TopologyError(
            f"{c.what} was refused: {reply_text(exc)}: the broker user lacks the configure "
            "permission for it; grant it, or run the app with App(declare=False) and have "
            "the topology declared by an operator (burrowmq topology apply)",
            entity=c.what,
            argument="configure permission",
        ),
    ),
    (
        (amqp_errors.ChannelClosed,),  # access refused, locked, any other channel error
        frozenset({DECLARE}),
        lambda exc, c: TopologyError(f"{c.what} was refused: {reply_text(exc)}", entity=c.what),
    ),
    (
        (ValueError, TypeError),  # pamqp refusing a name or an argument before sending
        frozenset({DECLARE}),
        lambda exc, c: TopologyError(f"{c.what} cannot be declared: {exc}", entity=c.what),
    ),
    # -- consuming -------------------------------------------------------------------------
    (
        (amqp_errors.ChannelNotFoundEntity,),
        frozenset({CONSUME}),
        lambda exc, c: TopologyError(
            f"cannot consume from {c.what}: it does not exist", entity=c.what
        ),
    ),
    (
        (amqp_errors.ChannelClosed,),  # access refused, exclusive queue in use, ...
        frozenset({CONSUME}),
        lambda exc, c: TopologyError(
            f"cannot consume from {c.what}: {reply_text(exc)}", entity=c.what
        ),
    ),
    # -- publishing ------------------------------------------------------------------------
    (
        (amqp_errors.PublishError,),  # returned: mandatory and unroutable
        frozenset({PUBLISH}),
        lambda exc, c: Unroutable(
            f"no queue is bound to take a message published to exchange {c.exchange!r} "
            f"with routing key {c.routing_key!r}",
            exchange=c.exchange,
            routing_key=c.routing_key,
        ),
    ),
    (
        (amqp_errors.DeliveryError,),  # nacked
        frozenset({PUBLISH}),
        lambda exc, c: PublishNacked(
            f"the broker refused (nacked) a message for {_where(c)}",
            exchange=c.exchange,
            routing_key=c.routing_key,
        ),
    ),
    (
        (amqp_errors.ChannelNotFoundEntity,),
        frozenset({PUBLISH}),
        _publish_error("cannot publish to exchange {exchange!r}: {reason}"),
    ),
    (
        (amqp_errors.ChannelClosed,),
        frozenset({PUBLISH}),
        _publish_error("publish to exchange {exchange!r} failed: {reason}"),
    ),
    (
        (TypeError, ValueError, OverflowError, struct.error),  # pamqp cannot encode it
        frozenset({PUBLISH}),
        lambda exc, c: _unsendable(exc, c),
    ),
    (
        (TimeoutError,),
        frozenset({PUBLISH}),
        lambda exc, c: PublishError(
            f"the broker did not confirm a message for exchange {c.exchange!r} within {c.timeout}s",
            exchange=c.exchange,
            routing_key=c.routing_key,
        ),
    ),
    # -- a channel asked of a closed connection: aiormq raises a plain RuntimeError --------
    (
        (RuntimeError,),
        frozenset({CHANNEL}),
        lambda exc, c: ConnectionLost(f"cannot {CHANNEL.value}: {describe_exc(exc)}"),
    ),
    # -- the connection went away under any operation --------------------------------------
    (
        CONNECTION_ERRORS,
        _ANY,
        lambda exc, c: ConnectionLost(
            f"connection lost before the broker confirmed a message for {_where(c)}: "
            f"{describe_exc(exc)}"
            if c.operation is PUBLISH
            else f"connection lost while trying to {c.operation.value} {c.what}: "
            f"{describe_exc(exc)}"
        ),
    ),
)
"""Rows of (library errors, operations, builder of ours), tried in order."""


def translate(exc: BaseException, context: Context) -> BaseException:
    """The error to raise for ``exc``, raised by a library call during ``context``.

    Returns:
        ``exc`` itself when it is burrowmq's own or a cancellation; else the first
        matching row's error, or a :class:`~burrowmq.TransportError` naming the type.
    """
    if isinstance(exc, BurrowError | asyncio.CancelledError):
        return exc
    operation = context.operation
    for kinds, operations, build in TABLE:
        if operation in operations and isinstance(exc, kinds):
            return build(exc, context)
    return TransportError(
        f"cannot {operation.value} {context.what}: {type(exc).__name__}: {describe_exc(exc)}"
    )


def fail(exc: BaseException, context: Context) -> NoReturn:
    """Raise what :func:`translate` makes of ``exc`` (from ``exc``); call it in ``except``."""
    error = translate(exc, context)
    if error is exc:
        raise exc
    raise error from exc
