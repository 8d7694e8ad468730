"""The AMQP transport: RabbitMQ through aio-pika and aiormq.

With its siblings in :mod:`burrowmq.amqp` (consumers, publishing, wire properties, and
the one table in :mod:`~burrowmq.amqp.errors` that translates the libraries' errors), the
only code that imports aio-pika, aiormq and pamqp.

Connections are opened with aio-pika (URL handling, client properties); channels are
aiormq's, used directly on the hot paths (publish, deliver, ack). Recovery is ours rather
than aio-pika's robust connection, because a list of URLs (cluster nodes) must be tried
in turn on every reconnect, topology must be re-declared before consumers restart, and a
delivery must never be acked on a channel it did not arrive on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import aio_pika
import aiormq

from burrowmq.amqp.consumer import AmqpReplyChannel, AmqpSubscription
from burrowmq.amqp.errors import (
    CHANNEL,
    CONNECT,
    CONSUME,
    DECLARE,
    RECOVERY_ERRORS,
    Context,
    describe_exc,
    fail,
    translate,
)
from burrowmq.amqp.publishing import InFlight, publish_confirmed
from burrowmq.exceptions import BrokerUnreachable, ConnectionLost
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import (
    DeliveryCallback,
    Properties,
    ReadyCallback,
    ReplyClosedCallback,
)
from burrowmq.framework.urls import describe_target, mask_url
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO, RESERVED_PREFIX

__all__ = ["AmqpTransport"]


_log = get_logger()


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
        self._subscriptions: list[AmqpSubscription] = []
        self._connected = asyncio.Event()
        self._closing = False
        self._recovery: asyncio.Task[None] | None = None
        self._restores: set[asyncio.Task[None]] = set()
        self._node: str | None = None
        self._in_flight = InFlight()
        self._channel_lock = asyncio.Lock()

    @property
    def description(self) -> str:
        return ", ".join(mask_url(u) for u in self._urls)

    @property
    def node(self) -> str | None:
        """The node connected to last (``host:port (vhost) as user``; no password)."""
        return self._node

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def on_ready(self, callback: ReadyCallback) -> None:
        self._ready_callbacks.append(callback)

    # -- connection and recovery -------------------------------------------------

    async def _open_any(self) -> aio_pika.abc.AbstractConnection:
        reasons: list[str] = []
        for url in self._urls:
            target = describe_target(url)
            try:
                properties: dict[str, Any] = {}
                if self._connection_name:
                    properties["connection_name"] = self._connection_name
                connection = await aio_pika.connect(
                    url, timeout=self._connect_timeout, client_properties=properties
                )
                self._node = target
                return connection
            except Exception as exc:
                reasons.append(str(translate(exc, Context(CONNECT, target))))
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
        self._declare_channel = await _open_channel(raw, confirms=False)
        self._publish_channel = await _open_channel(raw, confirms=True)
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
        self._in_flight.fail_all()
        for subscription in self._subscriptions:
            subscription.connection_lost()
        if self._closing:
            return
        _log.warning("connection_lost", node=self._node, reason=describe_exc(exc))
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
            except RECOVERY_ERRORS as exc:
                _log.warning("recovery_failed", attempt=attempt, reason=describe_exc(exc))
                with contextlib.suppress(Exception):
                    await connection.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)
                continue
            _log.info("connection_recovered", attempt=attempt, node=self._node)
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
        for task in list(self._restores):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
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

    def _restore_later(self, subscription: AmqpSubscription) -> None:
        """Re-declare the topology and restart a consumer the broker cancelled."""
        if self._closing:
            return
        task = asyncio.get_running_loop().create_task(
            self._restore(subscription), name=f"burrowmq-resubscribe:{subscription.queue}"
        )
        self._restores.add(task)
        task.add_done_callback(self._restores.discard)

    async def _restore(self, subscription: AmqpSubscription) -> None:
        delay = self._reconnect_interval
        while subscription.active and subscription.cancelled_by_broker and not self._closing:
            try:
                await self.wait_connected(self._recovery_wait)
                for callback in self._ready_callbacks:
                    await callback()
                assert self._connection is not None
                await subscription.start(self._connection.transport.connection)  # type: ignore[union-attr]
            except RECOVERY_ERRORS as exc:
                _log.warning(
                    "consumer_restore_failed", queue=subscription.queue, reason=describe_exc(exc)
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            _log.info("consumer_restored", queue=subscription.queue)
            return

    def _forget(self, subscription: AmqpSubscription) -> None:
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
            channel = await _open_channel(raw, confirms=which == "_publish_channel")
            setattr(self, which, channel)
            return channel

    # -- declarations ------------------------------------------------------------

    async def _declare(self, entity: str, method: Any, **kwargs: Any) -> Any:
        channel = await self._channel("_declare_channel")
        try:
            return await getattr(channel, method)(**kwargs)
        except Exception as exc:
            fail(exc, Context(DECLARE, entity, requested=kwargs))

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
        if name == "" or name.startswith(RESERVED_PREFIX):
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
        await self._in_flight.run(
            publish_confirmed(channel, exchange, routing_key, body, properties, mandatory, timeout),
            f"a message for exchange {exchange!r}, routing key {routing_key!r}",
        )

    # -- consuming ---------------------------------------------------------------

    async def consume(
        self,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool = False,
        exclusive: bool = False,
    ) -> AmqpSubscription:
        await self.wait_connected(self._recovery_wait)
        assert self._connection is not None
        subscription = AmqpSubscription(
            queue,
            callback,
            prefetch=prefetch,
            no_ack=no_ack,
            exclusive=exclusive,
            on_cancelled=self._restore_later,
            on_closed=self._forget,
        )
        raw = self._connection.transport.connection  # type: ignore[union-attr]
        try:
            await subscription.start(raw)
        except Exception as exc:
            fail(exc, Context(CONSUME, f"queue {queue!r}"))
        self._subscriptions.append(subscription)
        return subscription

    async def open_reply_channel(
        self,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
        *,
        timeout: float,
    ) -> AmqpReplyChannel:
        await self.wait_connected(timeout)
        assert self._connection is not None
        raw = self._connection.transport.connection  # type: ignore[union-attr]
        channel = await _open_channel(raw, confirms=True)
        reply = AmqpReplyChannel(channel, callback, on_closed)
        try:
            await reply.start()
        except Exception as exc:
            await reply.close()
            fail(exc, Context(CONSUME, DIRECT_REPLY_TO))
        return reply


async def _open_channel(
    connection: aiormq.abc.AbstractConnection, *, confirms: bool
) -> aiormq.abc.AbstractChannel:
    """A new channel, with publisher confirms (and returns raised) when asked."""
    try:
        if confirms:
            return await connection.channel(publisher_confirms=True, on_return_raises=True)
        return await connection.channel(publisher_confirms=False)
    except Exception as exc:
        fail(exc, Context(CHANNEL, "on the connection"))
