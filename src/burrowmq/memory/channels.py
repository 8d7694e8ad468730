"""The channels of a memory connection: its consumers' subscriptions and reply channels.

A :class:`MemorySubscription` consumes a queue on a channel of its own and is restarted
on a new channel after a reconnect; a :class:`MemoryReplyChannel` has a direct reply-to
address, receives the replies to the requests it publishes, and is never restored. Both
belong to a connection (the :class:`~burrowmq.memory.transport.MemoryTransport` that
opened them, the owner of their broker channels), which they tell when they close.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import uuid
from collections.abc import Callable

from burrowmq.exceptions import ConnectionLost
from burrowmq.framework.transport import (
    ConsumerArguments,
    DeliveryCallback,
    Properties,
    ReplyClosedCallback,
)
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO
from burrowmq.memory.broker import MemoryBroker
from burrowmq.memory.message import StoredMessage
from burrowmq.memory.queue import MemoryChannel, MemoryConsumer, MemoryDelivery

__all__ = ["MemoryReplyChannel", "MemorySubscription"]


class MemorySubscription:
    """A consumer on a channel of its own; restarted on a new channel after a reconnect."""

    def __init__(
        self,
        connection: object,
        forget: Callable[[MemorySubscription], None],
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool,
        exclusive: bool,
        arguments: ConsumerArguments | None = None,
    ) -> None:
        self.queue = queue
        self._arguments = arguments
        self._connection = connection
        self._forget = forget
        self._callback = callback
        self._prefetch = prefetch
        self._no_ack = no_ack
        self._exclusive = exclusive
        self._channel: MemoryChannel | None = None
        self._consumer: MemoryConsumer | None = None
        self.active = True

    def start(self, broker: MemoryBroker) -> None:
        channel = broker.open_channel(self._connection)
        arguments = self._arguments
        try:
            self._consumer = broker.consume(
                channel,
                self.queue,
                self._callback,
                prefetch=self._prefetch,
                no_ack=self._no_ack,
                exclusive=self._exclusive,
                arguments=arguments() if callable(arguments) else arguments,
            )
        except BaseException:
            channel.close()
            raise
        self._channel = channel

    @property
    def consuming(self) -> bool:
        """Whether deliveries can come now (not cancelled, its channel open)."""
        return self._consumer is not None and self._channel is not None and self._channel.is_open

    def drop(self) -> None:
        """The connection went: the channel closes, unacked deliveries are requeued."""
        channel, self._channel, self._consumer = self._channel, None, None
        if channel is not None:
            channel.close()

    async def cancel(self) -> None:
        """Stop deliveries; those delivered but not settled stay with the caller."""
        self.active = False
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.cancel()

    async def close(self) -> None:
        """Close the channel; unsettled deliveries go back to the queue."""
        self.active = False
        self._forget(self)
        self.drop()


def _reply_address() -> str:
    """A direct reply-to address of the form RabbitMQ gives (a pid on a reply node, a
    key), so that servers check memory and RabbitMQ addresses alike."""
    node = f"reply@{uuid.uuid4().int % 10**9}".encode()
    pid = bytes([131, 88, 119, len(node)]) + node + os.urandom(12)
    key = base64.b64encode(os.urandom(12)).decode("ascii")
    return f"{DIRECT_REPLY_TO}.{base64.b64encode(pid).decode('ascii')}.{key}"


class MemoryReplyChannel:
    """A channel with a direct reply-to address: it publishes requests, receives replies.

    Like RabbitMQ's ``amq.rabbitmq.reply-to``, replies are delivered without acks, only
    to this channel, and only while it is open; it is never restored after a reconnect.
    """

    def __init__(
        self,
        connection: object,
        forget: Callable[[MemoryReplyChannel], None],
        broker: MemoryBroker,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
    ) -> None:
        self.address = _reply_address()
        self._forget = forget
        self._broker = broker
        self._callback = callback
        self._on_closed = on_closed
        self._channel = broker.open_channel(connection)
        broker.replies[self.address] = self._receive

    def _receive(self, message: StoredMessage) -> None:
        # Asynchronous, like every delivery: never inside the publish that sent it.
        asyncio.get_running_loop().call_soon(self._deliver, message)

    def _deliver(self, message: StoredMessage) -> None:
        if self.is_open:
            tag = self._channel.next_tag()
            self._callback(MemoryDelivery(message, message.properties, tag, self._channel))

    @property
    def is_open(self) -> bool:
        """Whether the channel can still publish and receive replies."""
        return self._channel.is_open

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
        """Publish a request whose ``reply_to`` is this channel's address.

        Raises:
            Unroutable: ``mandatory`` and no queue took the message.
            PublishNacked: a queue refused it.
            ConnectionLost: the channel is closed.
        """
        if not self.is_open:
            raise ConnectionLost("the reply channel is closed (the connection was lost)")
        properties.reply_to = DIRECT_REPLY_TO
        sent = dataclasses.replace(properties, reply_to=self.address)
        self._broker.publish(exchange, routing_key, body, sent, mandatory=mandatory)

    def shut(self, reason: str) -> None:
        """Close the channel and tell the owner, once."""
        if not self._channel.is_open:
            return
        self._channel.close()
        self._broker.replies.pop(self.address, None)
        self._forget(self)
        self._on_closed(reason)

    async def close(self) -> None:
        """Close the channel (``on_closed`` is called); idempotent."""
        self.shut("closed by the client")
