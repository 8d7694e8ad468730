"""The transport contract: what burrowmq needs from a broker connection.

Two implementations exist: the AMQP transport (:mod:`burrowmq.amqp`, the only package
that imports aio-pika, aiormq and pamqp) and the in-memory transport
(:mod:`burrowmq.memory`). Everything above this module talks to brokers through
:class:`Transport` only, so the same routes run on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from burrowmq.framework.clock import Clock

__all__ = [
    "NOTHING_UNDECODABLE",
    "ConsumerArguments",
    "Delivery",
    "DeliveryCallback",
    "Properties",
    "ReadyCallback",
    "ReplyChannel",
    "ReplyClosedCallback",
    "Subscription",
    "Transport",
]


NOTHING_UNDECODABLE: Mapping[str, Any] = MappingProxyType({})
"""The :attr:`Delivery.undecodable` of a delivery whose properties all decoded."""


@dataclass(slots=True)
class Properties:
    """AMQP basic properties of a message, in burrowmq's own terms.

    ``delivery_mode`` is 2 (persistent) or 1 (transient); ``expiration`` is in
    milliseconds, as a string, as AMQP carries it.
    """

    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    delivery_mode: int | None = None
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None


class Delivery(Protocol):
    """One message delivered to a consumer, with the means to settle it.

    A delivery belongs to the channel it arrived on: once that channel is gone (a
    reconnect), settling it does nothing but return ``False``; the broker has already
    put the message back on its queue.
    """

    body: bytes
    properties: Properties
    exchange: str
    routing_key: str
    redelivered: bool
    delivery_tag: int
    undecodable: Mapping[str, Any]
    """Properties the transport could not decode (name -> raw value); usually empty.

    Such a delivery is dead-lettered with the reason, the raw values kept; what could
    be decoded is in :attr:`properties`."""

    @property
    def stale(self) -> bool:
        """Whether the channel it came on is gone (the broker has requeued it)."""
        ...

    async def settle_pending(self) -> None:
        """Send the acks of this channel's finished deliveries now, and wait for them.

        The dispatcher calls it before running a handler on a redelivered message, which
        may crash the process again: acks still waiting to be batched would die with it.
        """
        ...

    async def ack(self) -> bool:
        """Acknowledge; ``False`` if the channel it came on is gone."""
        ...

    async def nack(self, *, requeue: bool) -> bool:
        """Negatively acknowledge; ``False`` if the channel it came on is gone."""
        ...


DeliveryCallback = Callable[[Delivery], None]
ConsumerArguments = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
"""The arguments of a consumer (``x-stream-offset``, ``x-priority``), or a callable asked
for them at every (re)start, so that a restored stream consumer resumes after what it
settled instead of where it first started."""
ReadyCallback = Callable[[], Awaitable[None]]
ReplyClosedCallback = Callable[[str], None]
"""Told once, with a reason, that a :class:`ReplyChannel` closed."""


class Subscription(Protocol):
    """A running consumer on one queue."""

    queue: str

    @property
    def consuming(self) -> bool:
        """Whether deliveries can come now (not cancelled, its channel open)."""
        ...

    async def cancel(self) -> None:
        """Stop deliveries; messages delivered but not settled stay with the caller."""
        ...

    async def close(self) -> None:
        """Close the consumer's channel; unsettled messages go back to the queue."""
        ...


class ReplyChannel(Protocol):
    """One channel that publishes requests and receives their direct replies.

    RabbitMQ's direct reply-to delivers a reply published to the pseudo-queue
    ``amq.rabbitmq.reply-to`` (plus the suffix the broker adds) only to the consumer on
    the channel that published the request, so requests must be published on the very
    channel that consumes the replies. This is what RPC clients use.

    What an implementation must do (the AMQP transport with RabbitMQ's
    ``amq.rabbitmq.reply-to``; the memory transport with a private address of its own):

    - Consume replies without acks; call the ``callback`` given to
      :meth:`Transport.open_reply_channel` synchronously for each, in arrival order.
      A reply is whatever is published (by anyone, on any channel or transport sharing
      the broker) to the default exchange ``""`` with ``routing_key`` set to the
      ``reply_to`` a request carried.
    - :meth:`publish` on this channel, with the broker's confirm, and set the request's
      ``reply_to`` to this channel's address (overwriting what the caller put there).
    - Live exactly as long as one channel: never restored after a reconnection. When it
      closes for any reason (connection lost, broker closed it, :meth:`close`,
      transport closed) call ``on_closed(reason)`` exactly once; replies to requests
      published on it can no longer arrive. The owner opens a new one when it needs to.
    """

    @property
    def is_open(self) -> bool:
        """Whether the channel can still publish and receive replies."""
        ...

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
        """Publish a request on this channel (``reply_to`` set to it) and wait for the confirm.

        Raises:
            Unroutable: ``mandatory`` and no queue took the message.
            PublishNacked: the broker nacked it.
            ConnectionLost: the channel or its connection closed.
        """
        ...

    async def close(self) -> None:
        """Close the channel (``on_closed`` is called); idempotent."""
        ...


class Transport(Protocol):
    """A connection to a broker: declare, publish with confirms, consume."""

    @property
    def clock(self) -> Clock:
        """The time the broker keeps: schedules run on it (a fake one in tests)."""
        ...

    @property
    def description(self) -> str:
        """Where this transport connects, with any password masked."""
        ...

    @property
    def is_connected(self) -> bool:
        """Whether the transport is connected now (not recovering, not closed)."""
        ...

    def on_ready(self, callback: ReadyCallback) -> None:
        """Register a callback run after every (re)connection, in registration order."""
        ...

    async def connect(self) -> None:
        """Connect, then run the ready callbacks.

        Raises:
            BrokerUnreachable: no URL answered.
        """
        ...

    async def close(self) -> None:
        """Close the connection and every channel; idempotent."""
        ...

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the transport is connected (after a loss), up to ``timeout``.

        Raises:
            ConnectionLost: still not connected after ``timeout`` seconds.
        """
        ...

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
        """Declare an exchange on the declaration channel.

        Raises:
            TopologyError: the broker refused it (it exists with other settings).
        """
        ...

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
        """Declare a queue on the declaration channel; return its name.

        Raises:
            TopologyError: the broker refused it, or (passive) it does not exist.
        """
        ...

    async def bind_queue(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        ...

    async def bind_exchange(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind an exchange (``destination``) to another (``source``)."""
        ...

    async def delete_queue(self, name: str) -> None:
        """Delete a queue (tests and tools only; burrowmq never deletes on its own)."""
        ...

    async def consumer_count(self, queue: str) -> int | None:
        """How many consumers ``queue`` has now, or ``None`` if it does not exist.

        Raises:
            ConnectionLost: the connection dropped while asking.
        """
        ...

    async def message_count(self, queue: str) -> int | None:
        """How many messages wait (ready) in ``queue``, or ``None`` if it does not exist.

        Raises:
            ConnectionLost: the connection dropped while asking.
        """
        ...

    async def purge_queue(self, name: str) -> int:
        """Remove every ready message of a queue (tools only); return how many.

        Raises:
            TopologyError: the queue does not exist.
        """
        ...

    async def delete_exchange(self, name: str) -> None:
        """Delete an exchange (tests and tools only)."""
        ...

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
        """Publish and wait for the broker's confirm.

        Raises:
            Unroutable: ``mandatory`` and no queue took the message.
            PublishNacked: the broker nacked it.
            ConnectionLost: the connection dropped before the confirm.
        """
        ...

    async def consume(
        self,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: ConsumerArguments | None = None,
    ) -> Subscription:
        """Start consuming ``queue`` on a channel of its own with ``prefetch``.

        ``callback`` is called synchronously for each delivery; it must not block.
        The subscription is restored after a reconnection. ``arguments`` go with the
        consume (a stream consumer's ``x-stream-offset``: an int, ``"first"``,
        ``"last"``, ``"next"`` or a timezone-aware ``datetime``); a callable is asked
        again at every restart. A stream delivery carries its offset in the
        ``x-stream-offset`` header.
        """
        ...

    async def open_reply_channel(
        self,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
        *,
        timeout: float,
    ) -> ReplyChannel:
        """Open a :class:`ReplyChannel`: requests published on it get replies on ``callback``.

        Waits up to ``timeout`` for a lost connection to come back first.

        Raises:
            ConnectionLost: not connected within ``timeout``, or the channel could not
                be opened.
        """
        ...
