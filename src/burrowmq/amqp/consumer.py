"""AMQP consumers: subscriptions with their acker, and the direct reply-to channel.

Part of the AMQP transport. A subscription owns one channel; its deliveries are settled
through that channel's :class:`~burrowmq.amqp.acker.Acker`, so a delivery is never acked
on a channel it did not arrive on. What the transport must hear of (a consumer the broker
cancelled, a subscription closed) it is told through callbacks it hands over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiormq
import aiormq.exceptions as amqp_errors
from aiormq.abc import DeliveredMessage

from burrowmq.amqp.acker import Acker
from burrowmq.amqp.errors import CONNECTION_ERRORS, CONSUME, Context, describe_exc, fail
from burrowmq.amqp.frames import install, undecodable_of
from burrowmq.amqp.lean import LeanPublisher
from burrowmq.amqp.publishing import InFlight, publish_confirmed
from burrowmq.amqp.wire import from_pamqp
from burrowmq.exceptions import ConnectionLost
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import (
    NOTHING_UNDECODABLE,
    ConsumerArguments,
    DeliveryCallback,
    Properties,
    ReplyClosedCallback,
)
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO

__all__ = ["AmqpReplyChannel", "AmqpSubscription"]

_log = get_logger()
install()  # a message whose properties pamqp cannot decode must not drop the connection


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
        "undecodable",
    )

    def __init__(self, message: DeliveredMessage, acker: Acker) -> None:
        deliver: Any = message.delivery  # always a Basic.Deliver for consumers
        self.body: bytes = message.body
        self.properties = from_pamqp(message.header.properties)
        self.undecodable = undecodable_of(message.header) or NOTHING_UNDECODABLE
        self.exchange: str = deliver.exchange or ""
        self.routing_key: str = deliver.routing_key or ""
        self.redelivered: bool = bool(deliver.redelivered)
        self.delivery_tag: int = deliver.delivery_tag or 0
        self._acker = acker

    @property
    def stale(self) -> bool:
        return self._acker.closed

    async def settle_pending(self) -> None:
        await self._acker.flush()

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


SubscriptionEvent = Callable[["AmqpSubscription"], None]


class AmqpSubscription:
    """A consumer on its own channel; restarted by the transport after a reconnect.

    Args:
        queue: the queue consumed.
        callback: called with each delivery.
        prefetch: deliveries the broker may send ahead.
        no_ack: consume without acks.
        exclusive: an exclusive consumer.
        arguments: the consumer's arguments (a callable: asked at every start).
        on_cancelled: told when the broker cancelled the consumer (the transport
            restores it).
        on_closed: told when the subscription was closed for good.
    """

    def __init__(
        self,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool,
        exclusive: bool,
        on_cancelled: SubscriptionEvent,
        on_closed: SubscriptionEvent,
        arguments: ConsumerArguments | None = None,
    ) -> None:
        self.queue = queue
        self._arguments = arguments
        self._on_cancelled = on_cancelled
        self._on_closed = on_closed
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
        old, self._channel = self._channel, None
        if old is not None and not old.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
                await old.close()
        channel = await connection.channel(publisher_confirms=False)
        self._channel = channel
        channel.on_consumer_cancel_callbacks.add(self._on_broker_cancel)

        async def send_ack(tag: int, multiple: bool, drain: bool) -> None:
            await channel.basic_ack(tag, multiple=multiple, wait=drain)

        async def send_nack(tag: int, requeue: bool, drain: bool) -> None:
            await channel.basic_nack(tag, requeue=requeue, wait=drain)

        acker = self._acker = Acker(
            send_ack, send_nack, name=self.queue, batch=max(1, self._prefetch // 4)
        )
        if not self._no_ack:
            await channel.basic_qos(prefetch_count=self._prefetch)
        callback = self._callback

        async def on_message(message: DeliveredMessage) -> None:
            callback(_AmqpDelivery(message, acker))

        def on_channel_closed(closing: asyncio.Future[Any]) -> None:
            # Its deliveries are back on the queue: the acker stops, and the workers skip
            # what they had not started (no duplicate handling).
            acker.abandon()
            self._channel_closed(channel, closing)

        channel.closing.add_done_callback(on_channel_closed)
        _run_deliveries_inline(channel, on_message.__code__)
        arguments = self._arguments
        if callable(arguments):
            arguments = arguments()
        try:
            ok = await channel.basic_consume(
                self.queue,
                on_message,
                no_ack=self._no_ack,
                exclusive=self._exclusive,
                arguments=dict(arguments) if arguments else None,
            )
        except Exception as exc:
            fail(exc, Context(CONSUME, f"queue {self.queue!r}"))
        self._tag = ok.consumer_tag

    def connection_lost(self) -> None:
        """The connection is gone: its deliveries are back on the queue; stop settling."""
        if self._acker is not None:
            self._acker.abandon()

    @property
    def consuming(self) -> bool:
        """Whether the consumer runs now (its channel is open and not cancelled)."""
        return self._channel is not None and not self._channel.is_closed and self._tag is not None

    def _on_broker_cancel(self, frame: Any) -> None:
        # The broker cancelled us (the queue was deleted, or its node went away):
        # re-declare and consume again, unless we are the ones stopping.
        if not self._active or frame.consumer_tag != self._tag:
            return
        self._tag = None
        _log.error("consumer_cancelled_by_broker", queue=self.queue)
        self._on_cancelled(self)

    def _channel_closed(
        self, channel: aiormq.abc.AbstractChannel, closing: asyncio.Future[Any]
    ) -> None:
        """The broker closed the consumer's channel (consumer_timeout, a channel error):
        restore it like a cancelled consumer. A lost connection is the recovery's, and
        a channel this subscription closed or replaced itself is nothing to restore."""
        if channel is not self._channel or not self._active or closing.cancelled():
            return
        exc = closing.exception()
        if not isinstance(exc, amqp_errors.ChannelClosed) or exc.args == (None, None):
            return
        self._tag = None
        _log.error("consumer_channel_closed", queue=self.queue, reason=describe_exc(exc))
        self._on_cancelled(self)

    async def cancel(self) -> None:
        self._active = False
        channel, tag = self._channel, self._tag
        self._tag = None
        if channel is None or tag is None or channel.is_closed:
            return
        with contextlib.suppress(*CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
            await channel.basic_cancel(tag, timeout=5)

    async def close(self) -> None:
        self._active = False
        self._on_closed(self)
        if self._acker is not None:
            await self._acker.close()  # acks of finished handlers go out before the close
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
                await channel.close()

    @property
    def active(self) -> bool:
        return self._active


class _AmqpReply:
    """A direct reply: consumed without acks, so there is nothing to settle."""

    __slots__ = ("body", "delivery_tag", "exchange", "properties", "redelivered", "routing_key")
    undecodable = NOTHING_UNDECODABLE

    def __init__(self, message: DeliveredMessage) -> None:
        deliver: Any = message.delivery
        self.body: bytes = message.body
        self.properties = from_pamqp(message.header.properties)
        self.exchange: str = deliver.exchange or ""
        self.routing_key: str = deliver.routing_key or ""
        self.redelivered = False
        self.delivery_tag: int = deliver.delivery_tag or 0

    @property
    def stale(self) -> bool:
        return False

    async def settle_pending(self) -> None:
        return None

    async def ack(self) -> bool:
        return False

    async def nack(self, *, requeue: bool) -> bool:
        return False


class AmqpReplyChannel:
    """A channel consuming ``amq.rabbitmq.reply-to`` that also publishes the requests.

    Direct reply-to routes a reply only to the channel that published the request, so
    both happen here. It lives as long as its channel; it is not restored after a
    reconnection (the RPC client opens a new one).
    """

    __slots__ = ("_callback", "_channel", "_closed", "_in_flight", "_lean", "_on_closed", "_watch")

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
        self._in_flight = InFlight()
        # Only the requests are published here, so they may all take the lean path.
        self._lean = LeanPublisher.of(channel)
        self._watch: asyncio.Future[Any] = channel.closing
        self._watch.add_done_callback(self._channel_closed)

    async def start(self) -> None:
        # A reply only resolves its call's future: it runs inline, not in a task of its own.
        _run_deliveries_inline(self._channel, AmqpReplyChannel._deliver.__code__)
        await self._channel.basic_consume(DIRECT_REPLY_TO, self._deliver, no_ack=True)

    async def _deliver(self, message: DeliveredMessage) -> None:
        self._callback(_AmqpReply(message))

    def _channel_closed(self, future: asyncio.Future[Any]) -> None:
        reason = "channel closed"
        if not future.cancelled():
            exc = future.exception()
            if exc is not None and not isinstance(exc, asyncio.CancelledError):
                reason = describe_exc(exc)
        self._notify(reason)

    def _notify(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._in_flight.fail_all()
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
        await self._in_flight.run(
            publish_confirmed(
                self._channel,
                exchange,
                routing_key,
                body,
                properties,
                mandatory,
                timeout,
                self._lean,
            ),
            f"a request for {routing_key!r}",
        )

    async def close(self) -> None:
        self._watch.remove_done_callback(self._channel_closed)
        self._watch.cancel()
        self._notify("closed by the client")
        channel = self._channel
        if not channel.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS, amqp_errors.AMQPError, TimeoutError):
                await channel.close()
