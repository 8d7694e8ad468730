"""The transport contract: what burrowmq needs from a broker connection.

Two implementations exist: the AMQP transport (``framework/amqp.py``, the only module
that imports aio-pika, aiormq and pamqp) and the in-memory transport
(``framework/memory.py``). Everything above this module talks to brokers through
:class:`Transport` only, so the same routes run on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "Delivery",
    "DeliveryCallback",
    "Properties",
    "ReadyCallback",
    "Subscription",
    "Transport",
]


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

    async def ack(self) -> bool:
        """Acknowledge; ``False`` if the channel it came on is gone."""
        ...

    async def nack(self, *, requeue: bool) -> bool:
        """Negatively acknowledge; ``False`` if the channel it came on is gone."""
        ...


DeliveryCallback = Callable[[Delivery], None]
ReadyCallback = Callable[[], Awaitable[None]]


class Subscription(Protocol):
    """A running consumer on one queue."""

    queue: str

    async def cancel(self) -> None:
        """Stop deliveries; messages delivered but not settled stay with the caller."""
        ...

    async def close(self) -> None:
        """Close the consumer's channel; unsettled messages go back to the queue."""
        ...


class Transport(Protocol):
    """A connection to a broker: declare, publish with confirms, consume."""

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
    ) -> Subscription:
        """Start consuming ``queue`` on a channel of its own with ``prefetch``.

        ``callback`` is called synchronously for each delivery; it must not block.
        The subscription is restored after a reconnection.
        """
        ...
