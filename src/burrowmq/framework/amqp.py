"""The AMQP transport: RabbitMQ through aio-pika and aiormq.

This is the only module that imports aio-pika, aiormq and pamqp. Their errors are
translated here, once, into :mod:`burrowmq.exceptions`.

Connections are opened with aio-pika (URL handling, client properties); channels are
aiormq's, used directly on the hot paths (publish, deliver, ack). Recovery is ours rather
than aio-pika's robust connection, because a list of URLs (cluster nodes) must be tried
in turn on every reconnect, topology must be re-declared before consumers restart, and a
delivery must never be acked on a channel it did not arrive on.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import aio_pika
import aiormq
import aiormq.exceptions as amqp_errors
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from burrowmq.exceptions import (
    BrokerUnreachable,
    ConnectionLost,
    PublishError,
    PublishNacked,
    TopologyError,
    TransportError,
    Unroutable,
)
from burrowmq.framework.acker import Acker
from burrowmq.framework.logging import get_logger
from burrowmq.framework.transport import (
    DeliveryCallback,
    Properties,
    ReadyCallback,
    ReplyClosedCallback,
)
from burrowmq.framework.urls import describe_target, mask_url

__all__ = ["DIRECT_REPLY_TO", "AmqpTransport"]

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
"""RabbitMQ's direct reply-to pseudo-queue."""

_log = get_logger()

_ARGUMENT = re.compile(r"inequivalent arg '([^']+)'")
_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)'.*?received (.+?) but current is (.+)$")
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp_errors.AMQPConnectionError,
    amqp_errors.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    RuntimeError,  # aiormq raises it for operations on a closed connection
)

_RECOVERY_ERRORS: tuple[type[BaseException], ...] = (
    TransportError,
    TopologyError,
    amqp_errors.AMQPError,
    *_CONNECTION_ERRORS,
)


def _to_pamqp(props: Properties) -> spec.Basic.Properties:
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


def _from_pamqp(p: spec.Basic.Properties) -> Properties:
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


class _AmqpDelivery:
    """A delivery bound to the channel it arrived on (through that channel's acker)."""

    __slots__ = (
        "_acker",
        "body",
        "delivery_tag",
        "exchange",
        "properties",
        "redelivered",
        "routing_key",
    )

    def __init__(self, message: DeliveredMessage, acker: Acker) -> None:
        deliver: Any = message.delivery  # always a Basic.Deliver for consumers
        self.body: bytes = message.body
        self.properties = _from_pamqp(message.header.properties)
        self.exchange: str = deliver.exchange or ""
        self.routing_key: str = deliver.routing_key or ""
        self.redelivered: bool = bool(deliver.redelivered)
        self.delivery_tag: int = deliver.delivery_tag or 0
        self._acker = acker

    async def ack(self) -> bool:
        return self._acker.ack(self.delivery_tag)

    async def nack(self, *, requeue: bool) -> bool:
        return self._acker.nack(self.delivery_tag, requeue=requeue)


class _Settled:
    """Stands in for the task aiormq would create for one delivery callback."""

    __slots__ = ()

    def add_done_callback(self, callback: Any) -> None:
        pass


_SETTLED = _Settled()


def _run_deliveries_inline(channel: Any, code: Any) -> None:
    """Run our delivery callback inline instead of in a task of its own.

    aiormq wraps every delivery callback in a new task (``channel.create_task``); ours
    never awaits (it only hands the delivery to the worker pool), so it can run to
    completion at once. That saves a task per message on the hottest path. Only
    coroutines of ``code`` are run inline; everything else goes to aiormq as before,
    and if aiormq stops calling ``create_task`` this simply no longer applies.
    """
    create_task = getattr(channel, "create_task", None)
    if create_task is None:
        return

    def inline(coro: Any) -> Any:
        if getattr(coro, "cr_code", None) is not code:
            return create_task(coro)
        try:
            coro.send(None)
        except StopIteration:
            return _SETTLED
        except Exception:
            _log.exception("delivery_callback_failed")
            return _SETTLED
        coro.close()  # cannot happen: the callback has no await
        return _SETTLED

    channel.create_task = inline


class _AmqpSubscription:
    """A consumer on its own channel; restarted by the transport after a reconnect."""

    def __init__(
        self,
        transport: AmqpTransport,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool,
        exclusive: bool,
    ) -> None:
        self.queue = queue
        self._transport = transport
        self._callback = callback
        self._prefetch = prefetch
        self._no_ack = no_ack
        self._exclusive = exclusive
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._tag: str | None = None
        self._active = True
        self._acker: Acker | None = None

    async def start(self, connection: aiormq.abc.AbstractConnection) -> None:
        if self._acker is not None:  # a restart: the old channel's acker is done
            await self._acker.close()
        channel = await connection.channel(publisher_confirms=False)
        self._channel = channel

        async def send_ack(tag: int, multiple: bool) -> None:
            await channel.basic_ack(tag, multiple=multiple, wait=False)

        async def send_nack(tag: int, requeue: bool) -> None:
            await channel.basic_nack(tag, requeue=requeue, wait=False)

        acker = self._acker = Acker(
            send_ack, send_nack, name=self.queue, batch=max(1, self._prefetch // 4)
        )
        if not self._no_ack:
            await channel.basic_qos(prefetch_count=self._prefetch)
        callback = self._callback

        async def on_message(message: DeliveredMessage) -> None:
            callback(_AmqpDelivery(message, acker))

        _run_deliveries_inline(channel, on_message.__code__)
        try:
            ok = await channel.basic_consume(
                self.queue, on_message, no_ack=self._no_ack, exclusive=self._exclusive
            )
        except amqp_errors.ChannelNotFoundEntity:
            raise TopologyError(
                f"cannot consume from queue {self.queue!r}: it does not exist",
                entity=f"queue {self.queue!r}",
            ) from None
        except amqp_errors.ChannelAccessRefused as exc:
            raise TopologyError(
                f"cannot consume from queue {self.queue!r}: {_reply_text(exc)}",
                entity=f"queue {self.queue!r}",
            ) from None
        self._tag = ok.consumer_tag

    async def cancel(self) -> None:
        self._active = False
        channel, tag = self._channel, self._tag
        self._tag = None
        if channel is None or tag is None or channel.is_closed:
            return
        with contextlib.suppress(*_CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
            await channel.basic_cancel(tag, timeout=5)

    async def close(self) -> None:
        self._active = False
        self._transport._forget(self)
        if self._acker is not None:
            await self._acker.close()  # acks of finished handlers go out before the close
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*_CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
                await channel.close()

    @property
    def active(self) -> bool:
        return self._active


async def _publish(
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
            properties=_to_pamqp(properties),
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
            f"cannot publish to exchange {exchange!r}: {_reply_text(exc)}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except amqp_errors.ChannelClosed as exc:
        raise PublishError(
            f"publish to exchange {exchange!r} failed: {_reply_text(exc)}",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except TimeoutError:
        raise PublishError(
            f"the broker did not confirm a message for exchange {exchange!r} within {timeout}s",
            exchange=exchange,
            routing_key=routing_key,
        ) from None
    except _CONNECTION_ERRORS as exc:
        raise ConnectionLost(
            f"connection lost before the broker confirmed a message for exchange "
            f"{exchange!r}, routing key {routing_key!r}: {_describe_exc(exc)}"
        ) from None
    if isinstance(confirm, spec.Basic.Nack | spec.Basic.Reject):
        raise PublishNacked(
            f"the broker refused (nacked) a message for exchange {exchange!r}",
            exchange=exchange,
            routing_key=routing_key,
        )


class _AmqpReply:
    """A direct reply: consumed without acks, so there is nothing to settle."""

    __slots__ = ("body", "delivery_tag", "exchange", "properties", "redelivered", "routing_key")

    def __init__(self, message: DeliveredMessage) -> None:
        deliver: Any = message.delivery
        self.body: bytes = message.body
        self.properties = _from_pamqp(message.header.properties)
        self.exchange: str = deliver.exchange or ""
        self.routing_key: str = deliver.routing_key or ""
        self.redelivered = False
        self.delivery_tag: int = deliver.delivery_tag or 0

    async def ack(self) -> bool:
        return False

    async def nack(self, *, requeue: bool) -> bool:
        return False


class _AmqpReplyChannel:
    """A channel consuming ``amq.rabbitmq.reply-to`` that also publishes the requests.

    Direct reply-to routes a reply only to the channel that published the request, so
    both happen here. It lives as long as its channel; it is not restored after a
    reconnection (the RPC client opens a new one).
    """

    __slots__ = ("_callback", "_channel", "_closed", "_on_closed", "_watch")

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
    ) -> None:
        self._channel = channel
        self._callback = callback
        self._on_closed = on_closed
        self._closed = False
        self._watch: asyncio.Future[Any] = channel.closing
        self._watch.add_done_callback(self._channel_closed)

    async def start(self) -> None:
        await self._channel.basic_consume(DIRECT_REPLY_TO, self._deliver, no_ack=True)

    async def _deliver(self, message: DeliveredMessage) -> None:
        self._callback(_AmqpReply(message))

    def _channel_closed(self, future: asyncio.Future[Any]) -> None:
        reason = "channel closed"
        if not future.cancelled():
            exc = future.exception()
            if exc is not None and not isinstance(exc, asyncio.CancelledError):
                reason = _describe_exc(exc)
        self._notify(reason)

    def _notify(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._on_closed(reason)

    @property
    def is_open(self) -> bool:
        return not self._closed and not self._channel.is_closed

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        *,
        mandatory: bool = False,
        timeout: float | None = None,
    ) -> None:
        if not self.is_open:
            raise ConnectionLost("the reply channel is closed (the connection was lost)")
        properties.reply_to = DIRECT_REPLY_TO
        await _publish(self._channel, exchange, routing_key, body, properties, mandatory, timeout)

    async def close(self) -> None:
        self._watch.remove_done_callback(self._channel_closed)
        self._watch.cancel()
        self._notify("closed by the client")
        channel = self._channel
        if not channel.is_closed:
            with contextlib.suppress(*_CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
                await channel.close()


def _reply_text(exc: BaseException) -> str:
    for arg in exc.args:
        if isinstance(arg, spec.Channel.Close | spec.Connection.Close):
            return str(arg.reply_text)
        if isinstance(arg, str) and arg:
            return arg
    return str(exc) or type(exc).__name__


class AmqpTransport:
    """A RabbitMQ connection with confirms, its own recovery and translated errors.

    Args:
        urls: broker URLs; each (re)connection tries them in turn.
        connection_name: shown in the management UI.
        connect_timeout: seconds allowed for one connection attempt.
        recovery_wait: how long a publish or declaration waits for a lost connection
            to come back before it raises :class:`ConnectionLost`.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        connection_name: str | None = None,
        connect_timeout: float = 5.0,
        recovery_wait: float = 15.0,
        reconnect_interval: float = 0.5,
        reconnect_max_interval: float = 5.0,
    ) -> None:
        self._urls = tuple(urls)
        self._connection_name = connection_name
        self._connect_timeout = connect_timeout
        self._recovery_wait = recovery_wait
        self._reconnect_interval = reconnect_interval
        self._reconnect_max = reconnect_max_interval
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._declare_channel: aiormq.abc.AbstractChannel | None = None
        self._publish_channel: aiormq.abc.AbstractChannel | None = None
        self._ready_callbacks: list[ReadyCallback] = []
        self._subscriptions: list[_AmqpSubscription] = []
        self._connected = asyncio.Event()
        self._closing = False
        self._recovery: asyncio.Task[None] | None = None
        self._channel_lock = asyncio.Lock()

    @property
    def description(self) -> str:
        return ", ".join(mask_url(u) for u in self._urls)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def on_ready(self, callback: ReadyCallback) -> None:
        self._ready_callbacks.append(callback)

    # -- connection and recovery -------------------------------------------------

    async def _open_any(self) -> aio_pika.abc.AbstractConnection:
        reasons: list[str] = []
        for url in self._urls:
            try:
                properties: dict[str, Any] = {}
                if self._connection_name:
                    properties["connection_name"] = self._connection_name
                return await aio_pika.connect(
                    url, timeout=self._connect_timeout, client_properties=properties
                )
            except amqp_errors.ProbableAuthenticationError:
                reasons.append(f"{describe_target(url)}: access refused (check user/password)")
            except amqp_errors.AuthenticationError:
                reasons.append(f"{describe_target(url)}: authentication failed")
            except amqp_errors.ConnectionNotAllowed:  # type: ignore[attr-defined,unused-ignore]
                reasons.append(f"{describe_target(url)}: vhost not found or not allowed")
            except TimeoutError:
                reasons.append(f"{describe_target(url)}: timed out")
            except (OSError, amqp_errors.AMQPError, ConnectionError) as exc:
                text = mask_url(str(exc.strerror if isinstance(exc, OSError) else exc))
                reasons.append(f"{describe_target(url)}: {text or type(exc).__name__}")
        targets = tuple(describe_target(u) for u in self._urls)
        raise BrokerUnreachable("cannot reach RabbitMQ at " + "; ".join(reasons), targets=targets)

    async def connect(self) -> None:
        self._closing = False
        connection = await self._open_any()
        try:
            await self._after_connect(connection)
        except BaseException:
            self._closing = True  # a failed start is not a connection loss to recover from
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    async def _after_connect(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self._connection = connection
        raw = connection.transport.connection  # type: ignore[union-attr]
        self._declare_channel = await raw.channel(publisher_confirms=False)
        self._publish_channel = await raw.channel(publisher_confirms=True, on_return_raises=True)
        connection.close_callbacks.add(self._on_connection_closed)
        for callback in self._ready_callbacks:
            await callback()
        for subscription in list(self._subscriptions):
            if subscription.active:
                await subscription.start(raw)
        if connection.is_closed:
            # It dropped while we were setting up: its close callback found a recovery
            # already running and left it to us, so this must not count as connected.
            raise ConnectionLost("the connection closed again while it was being set up")
        self._connected.set()

    def _on_connection_closed(self, sender: Any, exc: BaseException | None = None) -> None:
        if sender is not self._connection:
            return
        self._connected.clear()
        if self._closing:
            return
        _log.warning("connection_lost", broker=self.description, reason=_describe_exc(exc))
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(
                self._recover(), name="burrowmq-recovery"
            )

    async def _recover(self) -> None:
        delay = self._reconnect_interval
        attempt = 0
        while not self._closing:
            attempt += 1
            try:
                connection = await self._open_any()
            except BrokerUnreachable as exc:
                _log.info("reconnect_failed", attempt=attempt, reason=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            try:
                await self._after_connect(connection)
            except _RECOVERY_ERRORS as exc:
                _log.warning("recovery_failed", attempt=attempt, reason=_describe_exc(exc))
                with contextlib.suppress(Exception):
                    await connection.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            _log.info("connection_recovered", attempt=attempt, broker=self.description)
            return

    async def wait_connected(self, timeout: float) -> None:
        if self._connected.is_set():
            return
        if self._closing or (self._connection is None and self._recovery is None):
            raise ConnectionLost("the transport is not connected")
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise ConnectionLost(
                f"no connection to RabbitMQ ({self.description}) within {timeout:g}s"
            ) from None

    async def close(self) -> None:
        self._closing = True
        self._connected.clear()
        recovery, self._recovery = self._recovery, None
        if recovery is not None and not recovery.done():
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await recovery
        for subscription in list(self._subscriptions):
            await subscription.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    def _forget(self, subscription: _AmqpSubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    async def _channel(self, which: str) -> aiormq.abc.AbstractChannel:
        """The declaration or publishing channel, reopened if the broker closed it."""
        channel: aiormq.abc.AbstractChannel | None = getattr(self, which)
        if channel is not None and not channel.is_closed:
            return channel
        await self.wait_connected(self._recovery_wait)
        async with self._channel_lock:
            channel = getattr(self, which)
            if channel is not None and not channel.is_closed:
                return channel
            assert self._connection is not None  # wait_connected guarantees it
            raw = self._connection.transport.connection  # type: ignore[union-attr]
            try:
                if which == "_publish_channel":
                    channel = await raw.channel(publisher_confirms=True, on_return_raises=True)
                else:
                    channel = await raw.channel(publisher_confirms=False)
            except _CONNECTION_ERRORS as exc:
                raise ConnectionLost(f"cannot open a channel: {_describe_exc(exc)}") from None
            setattr(self, which, channel)
            return channel

    # -- declarations ------------------------------------------------------------

    async def _declare(self, entity: str, method: Any, **kwargs: Any) -> Any:
        channel = await self._channel("_declare_channel")
        try:
            return await getattr(channel, method)(**kwargs)
        except amqp_errors.ChannelPreconditionFailed as exc:
            raise _precondition_error(entity, _reply_text(exc), kwargs) from None
        except amqp_errors.ChannelNotFoundEntity as exc:
            raise TopologyError(f"{entity}: {_reply_text(exc)}", entity=entity) from None
        except (amqp_errors.ChannelAccessRefused, amqp_errors.ChannelLockedResource) as exc:
            raise TopologyError(
                f"{entity} was refused: {_reply_text(exc)}", entity=entity
            ) from None
        except amqp_errors.ChannelClosed as exc:
            raise TopologyError(
                f"{entity} was refused: {_reply_text(exc)}", entity=entity
            ) from None
        except _CONNECTION_ERRORS as exc:
            raise ConnectionLost(
                f"connection lost while declaring {entity}: {_describe_exc(exc)}"
            ) from None

    async def declare_exchange(
        self,
        name: str,
        type: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
    ) -> None:
        if name == "" or name.startswith("amq."):
            return  # predeclared by the broker, may not be redeclared
        await self._declare(
            f"exchange {name!r}",
            "exchange_declare",
            exchange=name,
            exchange_type=type,
            passive=passive,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=dict(arguments or {}),
        )

    async def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
    ) -> str:
        ok = await self._declare(
            f"queue {name!r}",
            "queue_declare",
            queue=name,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=dict(arguments or {}),
        )
        return str(ok.queue)

    async def bind_queue(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        await self._declare(
            f"binding of queue {queue!r} to exchange {exchange!r} ({routing_key!r})",
            "queue_bind",
            queue=queue,
            exchange=exchange,
            routing_key=routing_key,
            arguments=dict(arguments or {}),
        )

    async def bind_exchange(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        await self._declare(
            f"binding of exchange {destination!r} to exchange {source!r} ({routing_key!r})",
            "exchange_bind",
            destination=destination,
            source=source,
            routing_key=routing_key,
            arguments=dict(arguments or {}),
        )

    async def delete_queue(self, name: str) -> None:
        await self._declare(f"queue {name!r}", "queue_delete", queue=name)

    async def delete_exchange(self, name: str) -> None:
        await self._declare(f"exchange {name!r}", "exchange_delete", exchange=name)

    # -- publishing --------------------------------------------------------------

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        *,
        mandatory: bool = False,
        timeout: float | None = None,
    ) -> None:
        channel = self._publish_channel
        if channel is None or channel.is_closed or not self._connected.is_set():
            channel = await self._channel("_publish_channel")
        await _publish(channel, exchange, routing_key, body, properties, mandatory, timeout)

    # -- consuming ---------------------------------------------------------------

    async def consume(
        self,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool = False,
        exclusive: bool = False,
    ) -> _AmqpSubscription:
        await self.wait_connected(self._recovery_wait)
        assert self._connection is not None
        subscription = _AmqpSubscription(
            self, queue, callback, prefetch=prefetch, no_ack=no_ack, exclusive=exclusive
        )
        raw = self._connection.transport.connection  # type: ignore[union-attr]
        try:
            await subscription.start(raw)
        except _CONNECTION_ERRORS as exc:
            raise ConnectionLost(
                f"connection lost while starting a consumer on {queue!r}: {_describe_exc(exc)}"
            ) from None
        self._subscriptions.append(subscription)
        return subscription

    async def open_reply_channel(
        self,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
        *,
        timeout: float,
    ) -> _AmqpReplyChannel:
        await self.wait_connected(timeout)
        assert self._connection is not None
        raw = self._connection.transport.connection  # type: ignore[union-attr]
        try:
            channel = await raw.channel(publisher_confirms=True, on_return_raises=True)
        except _RECOVERY_ERRORS as exc:
            raise ConnectionLost(f"cannot open a reply channel: {_describe_exc(exc)}") from None
        reply = _AmqpReplyChannel(channel, callback, on_closed)
        try:
            await reply.start()
        except _RECOVERY_ERRORS as exc:
            await reply.close()
            raise ConnectionLost(
                f"cannot consume {DIRECT_REPLY_TO}: {_describe_exc(exc)}"
            ) from None
        return reply


def _precondition_error(entity: str, text: str, requested: Mapping[str, Any]) -> TopologyError:
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


def _describe_exc(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    text = _reply_text(exc) if isinstance(exc, amqp_errors.AMQPError) else str(exc)
    return mask_url(text) or type(exc).__name__
