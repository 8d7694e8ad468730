"""AMQP wire translation: our properties and errors to and from aiormq's and pamqp's.

Part of the AMQP transport (with ``amqp.py`` and ``amqp_consumer.py``): the only modules
that import aio-pika, aiormq and pamqp. Errors of those libraries are translated here,
once, into :mod:`burrowmq.exceptions`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiormq
import aiormq.exceptions as amqp_errors
from pamqp import commands as spec

from burrowmq.exceptions import (
    ConnectionLost,
    PublishError,
    PublishNacked,
    TopologyError,
    TransportError,
    Unroutable,
)
from burrowmq.framework.transport import Properties
from burrowmq.framework.urls import mask_url

__all__ = [
    "CONNECTION_ERRORS",
    "DIRECT_REPLY_TO",
    "RECOVERY_ERRORS",
    "InFlight",
    "describe_exc",
    "from_pamqp",
    "precondition_error",
    "publish_confirmed",
    "reply_text",
    "to_pamqp",
]

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
"""RabbitMQ's direct reply-to pseudo-queue."""

_ARGUMENT = re.compile(r"inequivalent arg '([^']+)'")
_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'.*?received (.+?) but current is (.+)$")
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp_errors.AMQPConnectionError,
    amqp_errors.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    RuntimeError,  # aiormq raises it for operations on a closed connection
)

RECOVERY_ERRORS: tuple[type[BaseException], ...] = (
    TransportError,
    TopologyError,
    amqp_errors.AMQPError,
    *CONNECTION_ERRORS,
)


def to_pamqp(props: Properties) -> spec.Basic.Properties:
    return spec.Basic.Properties(
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        headers=props.headers or None,
        delivery_mode=props.delivery_mode,
        priority=props.priority,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        expiration=props.expiration,
        message_id=props.message_id,
        timestamp=props.timestamp,
        message_type=props.type,
        user_id=props.user_id,
        app_id=props.app_id,
    )


def from_pamqp(p: spec.Basic.Properties) -> Properties:
    return Properties(
        content_type=p.content_type,
        content_encoding=p.content_encoding,
        headers=dict(p.headers) if p.headers else {},
        delivery_mode=p.delivery_mode,
        priority=p.priority,
        correlation_id=p.correlation_id,
        reply_to=p.reply_to,
        expiration=p.expiration,
        message_id=p.message_id,
        timestamp=p.timestamp,
        type=p.message_type,
        user_id=p.user_id,
        app_id=p.app_id,
    )


async def publish_confirmed(
    channel: aiormq.abc.AbstractChannel,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: Properties,
    mandatory: bool,
    timeout: float | None,
) -> None:
    """Publish on a confirming channel, translating aiormq's errors into ours."""
    try:
        confirm = await channel.basic_publish(  # type: ignore[call-arg]
            body,
            exchange=exchange,
            routing_key=routing_key,
            properties=to_pamqp(properties),
            mandatory=mandatory,
            timeout=timeout,
            # The confirm is awaited, and it can only follow the write: waiting for the
            # socket drain as well would cost one more wake-up per message for nothing.
            wait=False,
        )
    except (TypeError, ValueError) as exc:  # pamqp cannot encode a property or header
        raise PublishError(
            f"cannot publish to exchange {exchange!r}: {_unencodable(properties, exc)}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except amqp_errors.PublishError:
        raise Unroutable(
            f"no queue is bound to take a message published to exchange {exchange!r} "
            f"with routing key {routing_key!r}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except amqp_errors.DeliveryError:
        raise PublishNacked(
            f"the broker refused (nacked) a message for exchange {exchange!r}, "
            f"routing key {routing_key!r}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except amqp_errors.ChannelNotFoundEntity as exc:
        raise PublishError(
            f"cannot publish to exchange {exchange!r}: {reply_text(exc)}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except amqp_errors.ChannelClosed as exc:
        raise PublishError(
            f"publish to exchange {exchange!r} failed: {reply_text(exc)}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except TimeoutError:
        raise PublishError(
            f"the broker did not confirm a message for exchange {exchange!r} within {timeout}s",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except CONNECTION_ERRORS as exc:
        raise ConnectionLost(
            f"connection lost before the broker confirmed a message for exchange "
            f"{exchange!r}, routing key {routing_key!r}: {describe_exc(exc)}"
        ) from None
    if isinstance(confirm, spec.Basic.Nack | spec.Basic.Reject):
        raise PublishNacked(
            f"the broker refused (nacked) a message for exchange {exchange!r}",
            exchange=exchange,
            routing_key=routing_key,
        )


def reply_text(exc: BaseException) -> str:
    for arg in exc.args:
        if isinstance(arg, spec.Channel.Close | spec.Connection.Close):
            return str(arg.reply_text)
        if isinstance(arg, str) and arg:
            return arg
    return str(exc) or type(exc).__name__


def precondition_error(entity: str, text: str, requested: Mapping[str, Any]) -> TopologyError:
    """Turn a 406 PRECONDITION_FAILED into an error naming the entity and argument.

    RabbitMQ's reply text is limited to 255 bytes and long names cut it short, so the
    requested value comes from the declaration itself when the text lacks it.
    """
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
        wanted, current = _clean_value(values.group(2)), _clean_value(values.group(3))
    return TopologyError(
        f"{entity} exists on the broker with {argument}={current}, but this declaration "
        f"asks for {argument}={wanted}; burrowmq never deletes or recreates it on its own: "
        "change the declaration or delete the entity on the broker",
        entity=entity,
        argument=argument,
    )


_FIELD_TYPES = (str, int, float, bool, bytearray, Decimal, datetime, dict, list, type(None))


def _unencodable(properties: Properties, exc: BaseException) -> str:
    """Name the header that AMQP field tables cannot carry, or fall back to pamqp's text."""

    def bad(value: Any) -> Any:
        inner = list(value.values()) if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            return next((found for v in inner if (found := bad(v)) is not None), None)
        return None if isinstance(value, _FIELD_TYPES) else value

    for name, value in (properties.headers or {}).items():
        found = bad(value)
        if found is not None:
            return (
                f"header {name!r} holds a {type(found).__name__}, which AMQP headers cannot "
                "carry (use str, int, float, bool, Decimal, datetime, bytearray, list, dict)"
            )
    return f"a message property could not be encoded ({exc})"


def _clean_value(text: str) -> str:
    """Turn RabbitMQ's "the value '5' of type 'long'" into "5 (long)"."""
    text = text.strip()
    match = re.fullmatch(r"the value '(.*)' of type '(\w+)'", text)
    if match:
        return f"{match.group(1)} ({match.group(2)})"
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return text


def describe_exc(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    text = reply_text(exc) if isinstance(exc, amqp_errors.AMQPError) else str(exc)
    return mask_url(text) or type(exc).__name__


class InFlight:
    """The publishes waiting on one connection, so that losing it fails them at once.

    aiormq rejects the confirms of a closed channel, but a publish can also be stuck
    before that, waiting for room in the dead connection's write queue; nothing would
    ever wake it. Each publish runs in a cancellable scope registered here, and
    :meth:`fail_all` (called when the connection is lost) ends every one of them with
    :class:`ConnectionLost`: never a silent success, never a hang.
    """

    __slots__ = ("_scopes",)

    def __init__(self) -> None:
        self._scopes: set[asyncio.Timeout] = set()

    async def run(self, publish: Any, what: str) -> None:
        """Await ``publish`` (a coroutine); raise ConnectionLost if the connection goes."""
        scope = asyncio.timeout(None)
        scopes = self._scopes
        try:
            async with scope:
                scopes.add(scope)
                try:
                    await publish
                finally:
                    scopes.discard(scope)
        except TimeoutError:
            if scope.expired():
                raise ConnectionLost(
                    f"connection lost before the broker confirmed {what}"
                ) from None
            raise

    def fail_all(self) -> None:
        """End every publish still waiting (the connection is gone)."""
        if not self._scopes:
            return
        now = asyncio.get_running_loop().time()
        for scope in list(self._scopes):
            scope.reschedule(now)
