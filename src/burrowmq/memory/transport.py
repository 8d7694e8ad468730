"""The in-memory transport: RabbitMQ's semantics, in process, for tests and fast feedback.

:class:`MemoryTransport` implements :class:`~burrowmq.framework.transport.Transport`
against a :class:`~burrowmq.memory.broker.MemoryBroker`. ``App(url="memory://")``
(or ``"memory://name"``) connects to the broker of that name, shared by every app of the
process that uses the same URL, so a publisher app and a consumer app in one test see
each other. A named broker lives while a connection to it is open.

What holds as on RabbitMQ: the four exchange types, exchange-to-exchange bindings and
alternate exchanges (routed by :mod:`burrowmq.framework.matching`), the default exchange,
``mandatory`` returns, confirms (``publish`` returns once every queue took the message),
manual ack, nack and requeue (``redelivered``), per-consumer prefetch, exclusive queues
and consumers, auto-delete queues, dead-letter exchanges with ``x-death``, per-queue and
per-message TTL, ``x-max-length`` and ``x-max-length-bytes`` with every ``x-overflow``,
quorum queues' ``x-delivery-count`` and ``x-delivery-limit``, streams read from an
offset (:mod:`burrowmq.memory.stream`), and the 404/405/406 refusals
of declarations as :class:`~burrowmq.TopologyError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from burrowmq.exceptions import ConnectionLost, TopologyError
from burrowmq.framework.clock import Clock
from burrowmq.framework.transport import (
    ConsumerArguments,
    DeliveryCallback,
    Properties,
    ReadyCallback,
    ReplyClosedCallback,
)
from burrowmq.memory.broker import MemoryBroker
from burrowmq.memory.channels import MemoryReplyChannel, MemorySubscription

__all__ = ["MemoryBroker", "MemoryTransport"]


class MemoryTransport:
    """A connection to an in-process broker, with the AMQP transport's contract.

    Args:
        broker: the broker to connect to; default: the shared broker named by ``url``.
        url: ``memory://`` or ``memory://name``; apps using the same URL share a broker.
            ``?rabbitmq=3.10`` routes headers as RabbitMQ 3.10 to 3.12 do (default 4.x).
        clock: the time the broker's TTLs (delays) and the app's schedules run on; a
            :class:`~burrowmq.framework.clock.FakeClock` lets a test move it. Default:
            the broker's (the real time, unless another transport gave it one).

    Raises:
        ConfigurationError: a bad ``?rabbitmq=`` or another parameter in ``url``.
    """

    def __init__(
        self,
        broker: MemoryBroker | None = None,
        *,
        url: str = "memory://",
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock
        self._url = broker.name if broker is not None else MemoryBroker.key(url)
        self._named_url = url  # with its ?rabbitmq=, for MemoryBroker.named
        if broker is None:
            MemoryBroker.rules_of(url)  # a bad ?rabbitmq= fails here rather than at connect
        self._fixed = broker
        self._broker = broker
        self._ready_callbacks: list[ReadyCallback] = []
        self._subscriptions: list[MemorySubscription] = []
        self._replies: list[MemoryReplyChannel] = []
        self._connected = asyncio.Event()
        self._attached = False
        self._closed = False

    @classmethod
    def shared(cls, url: str) -> MemoryTransport:
        """A new connection to the broker shared by everyone using ``url`` in this process.

        Args:
            url: ``memory://`` or ``memory://name``.
        """
        return cls(url=url)

    @property
    def broker(self) -> MemoryBroker:
        """The broker this transport connects (or connected) to, for inspection."""
        if self._broker is None:
            self._broker = MemoryBroker.named(self._named_url)
        return self._broker

    @property
    def clock(self) -> Clock:
        """The time the broker's TTLs and the app's schedules run on."""
        return self._clock if self._clock is not None else self.broker.clock

    @property
    def description(self) -> str:
        """The ``memory://`` URL of the broker."""
        return self._url

    @property
    def is_connected(self) -> bool:
        """Whether the transport is connected now."""
        return self._connected.is_set()

    def on_ready(self, callback: ReadyCallback) -> None:
        """Register a callback run after every (re)connection, in registration order."""
        self._ready_callbacks.append(callback)

    async def connect(self) -> None:
        """Connect to the broker, run the ready callbacks, then restart subscriptions."""
        await self._connect(self._fixed or MemoryBroker.named(self._named_url))

    async def _connect(self, broker: MemoryBroker) -> None:
        if self._attached:
            return
        self._broker = broker
        self._closed = False
        if self._clock is not None:
            broker.clock = self._clock
        broker.attach(self)
        self._attached = True
        try:
            for callback in self._ready_callbacks:
                await callback()
            for subscription in list(self._subscriptions):
                if subscription.active:
                    subscription.start(broker)
        except BaseException:
            self._detach()
            raise
        self._connected.set()

    def _detach(self, reason: str = "connection lost") -> None:
        self._connected.clear()
        self._attached = False
        for reply in list(self._replies):
            reply.shut(reason)
        for subscription in list(self._subscriptions):
            subscription.drop()
        if self._broker is not None:
            self._broker.detach(self)

    async def close(self) -> None:
        """Close every channel (unacked deliveries are requeued) and disconnect."""
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._attached:
            self._detach("transport closed")

    async def reconnect(self) -> None:
        """Lose the connection and recover at once, as after a network failure.

        Every channel closes (unacked deliveries return to their queues, marked
        redelivered) and this connection's exclusive queues are deleted; then the ready
        callbacks run again and the subscriptions restart, as the AMQP transport does.
        """
        broker = self.broker
        if self._attached:
            self._detach()
        await self._connect(broker)

    async def wait_connected(self, timeout: float) -> None:
        """Wait until connected, up to ``timeout`` seconds.

        Raises:
            ConnectionLost: not connected (the transport is closed or never connected).
        """
        if self._connected.is_set():
            return
        if self._closed or not self._attached:
            raise ConnectionLost("the transport is not connected")
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise ConnectionLost(f"no connection to {self._url} within {timeout:g}s") from None

    def _require(self, what: str) -> MemoryBroker:
        if not self._attached or self._broker is None:
            raise ConnectionLost(f"cannot {what}: the transport is not connected")
        return self._broker

    def _forget(self, subscription: MemorySubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    def _forget_reply(self, reply: MemoryReplyChannel) -> None:
        with contextlib.suppress(ValueError):
            self._replies.remove(reply)

    # -- declarations ------------------------------------------------------------------

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
        """Declare an exchange.

        Raises:
            TopologyError: it exists with other settings, or (passive) does not exist.
        """
        self._require("declare an exchange").declare_exchange(
            name,
            type,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
            passive=passive,
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
        """Declare a queue; return its name (generated for ``""``).

        Raises:
            TopologyError: it exists with other settings, is another connection's
                exclusive queue, or (passive) does not exist.
        """
        return self._require("declare a queue").declare_queue(
            name,
            owner=self,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
            passive=passive,
        )

    async def bind_queue(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange.

        Raises:
            TopologyError: either is missing, or the binding is invalid.
        """
        self._require("bind a queue").bind(
            queue, exchange, routing_key, arguments, destination_type="queue"
        )

    async def bind_exchange(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind an exchange (``destination``) to another (``source``).

        Raises:
            TopologyError: either is missing, or the binding is invalid.
        """
        self._require("bind an exchange").bind(
            destination, source, routing_key, arguments, destination_type="exchange"
        )

    async def consumer_count(self, queue: str) -> int | None:
        """How many consumers ``queue`` has, or ``None`` if it does not exist.

        Of a single-active-consumer queue, as RabbitMQ counts them: the active one only.
        """
        found = self._require("look at a queue").queues.get(queue)
        if found is None:
            return None
        if found.arguments.get("x-single-active-consumer") is True:
            return min(1, len(found.consumers))
        return len(found.consumers)

    async def message_count(self, queue: str) -> int | None:
        """How many messages wait (ready) in ``queue``, or ``None`` if it does not exist."""
        found = self._require("look at a queue").queues.get(queue)
        return None if found is None else len(found.ready)

    async def purge_queue(self, name: str) -> int:
        """Remove every ready message of a queue; return how many.

        Raises:
            TopologyError: the queue does not exist.
        """
        broker = self._require("purge a queue")
        found = broker.queues.get(name)
        if found is None:
            raise TopologyError(
                f"queue {name!r}: NOT_FOUND - no queue {name!r}", entity=f"queue {name!r}"
            )
        count = len(found.ready)
        found.ready.clear()
        broker.notify()
        return count

    async def delete_queue(self, name: str) -> None:
        """Delete a queue; a missing one is fine."""
        self._require("delete a queue").delete_queue(name)

    async def delete_exchange(self, name: str) -> None:
        """Delete an exchange; a missing one is fine."""
        self._require("delete an exchange").delete_exchange(name)

    # -- publishing and consuming --------------------------------------------------------

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
        """Publish; returns once every queue the message reached has taken it.

        Raises:
            Unroutable: ``mandatory`` and no queue took the message.
            PublishNacked: a queue refused it (``x-overflow: reject-publish``).
            PublishError: no such exchange, an internal one, or a bad expiration.
            ConnectionLost: the transport is not connected.
        """
        self._require("publish").publish(
            exchange, routing_key, body, properties, mandatory=mandatory
        )

    async def consume(
        self,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: ConsumerArguments | None = None,
    ) -> MemorySubscription:
        """Start consuming ``queue`` on a channel of its own with ``prefetch``.

        ``arguments`` (or what a callable of them returns at each start) go to the
        queue: a stream reads ``x-stream-offset`` from them.

        Raises:
            TopologyError: the queue does not exist or cannot be consumed.
            ConnectionLost: the transport is not connected.
        """
        broker = self._require("consume")
        subscription = MemorySubscription(
            self,
            self._forget,
            queue,
            callback,
            prefetch=prefetch,
            no_ack=no_ack,
            exclusive=exclusive,
            arguments=arguments,
        )
        subscription.start(broker)
        self._subscriptions.append(subscription)
        return subscription

    async def open_reply_channel(
        self,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
        *,
        timeout: float,
    ) -> MemoryReplyChannel:
        """Open a channel whose requests get their replies on ``callback`` (direct reply-to).

        Raises:
            ConnectionLost: not connected within ``timeout``.
        """
        await self.wait_connected(timeout)
        reply = MemoryReplyChannel(
            self, self._forget_reply, self._require("open a reply channel"), callback, on_closed
        )
        self._replies.append(reply)
        return reply
