"""Queues of the in-memory broker: stored messages, consumers, channels and deliveries.

A :class:`MemoryQueue` holds its ready messages in publish order and hands them to its
consumers round-robin, each up to its prefetch. Delivered messages wait, unacked, on the
:class:`MemoryChannel` they went out on: an ack drops them, a requeue puts them back in
their place with ``redelivered`` set, a reject dead-letters them, and closing the channel
requeues whatever it still holds.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from burrowmq.framework.clock import Clock, Timer
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import NOTHING_UNDECODABLE, Properties
from burrowmq.memory.message import StoredMessage, delivered_copy

__all__ = ["BrokerSide", "MemoryChannel", "MemoryConsumer", "MemoryDelivery", "MemoryQueue"]

_log = get_logger()


class BrokerSide(Protocol):
    """What queues and channels ask of the broker that holds them (the broker is one)."""

    clock: Clock
    """The time message TTLs run on."""

    def notify(self) -> None:
        """Something changed: wake whoever waits for the broker to go idle."""
        ...

    def dead_letter(self, queue: MemoryQueue, message: StoredMessage, reason: str) -> None:
        """Dead-letter ``message`` of ``queue`` as its arguments say, for ``reason``."""
        ...

    def delete_queue(self, name: str) -> None:
        """Delete a queue (an auto-delete queue whose last consumer left)."""
        ...

    def channel_error(self, channel: MemoryChannel, reason: str) -> None:
        """Close ``channel`` for a protocol error, as RabbitMQ would."""
        ...


class MemoryDelivery:
    """One message delivered to a consumer, settled on the channel it came on."""

    __slots__ = (
        "_channel",
        "body",
        "delivery_tag",
        "exchange",
        "properties",
        "redelivered",
        "routing_key",
    )
    undecodable = NOTHING_UNDECODABLE  # what the memory broker holds always decodes

    def __init__(
        self,
        message: StoredMessage,
        properties: Properties,
        delivery_tag: int,
        channel: MemoryChannel,
    ) -> None:
        self.body = message.body
        self.properties = properties
        self.exchange = message.exchange
        self.routing_key = message.routing_key
        self.redelivered = message.redelivered
        self.delivery_tag = delivery_tag
        self._channel = channel

    @property
    def stale(self) -> bool:
        """Whether the channel it came on is closed (the message went back to its queue)."""
        return not self._channel.is_open

    async def settle_pending(self) -> None:
        """Nothing to do: the memory broker settles at once."""

    async def ack(self) -> bool:
        """Acknowledge; ``False`` if the channel it came on is closed."""
        return self._channel.settle(self.delivery_tag, ack=True, requeue=False)

    async def nack(self, *, requeue: bool) -> bool:
        """Requeue or dead-letter; ``False`` if the channel it came on is closed."""
        return self._channel.settle(self.delivery_tag, ack=False, requeue=requeue)


class MemoryChannel:
    """A channel of one connection: its consumers and the deliveries not yet settled."""

    def __init__(self, broker: BrokerSide, owner: object) -> None:
        self.broker = broker
        self.owner = owner
        self.is_open = True
        self.consumers: list[MemoryConsumer] = []
        self.unacked: dict[int, tuple[MemoryQueue, StoredMessage, MemoryConsumer]] = {}
        self._tags = itertools.count(1)

    def next_tag(self) -> int:
        """The next delivery tag of this channel."""
        return next(self._tags)

    def settle(self, tag: int, *, ack: bool, requeue: bool) -> bool:
        """Ack, requeue or reject a delivery; ``False`` when the channel is closed.

        Settling a tag twice closes the channel (PRECONDITION_FAILED - unknown delivery
        tag), as RabbitMQ does; its other unacked deliveries go back to their queues.
        """
        if not self.is_open:
            return False
        entry = self.unacked.pop(tag, None)
        if entry is None:
            self.broker.channel_error(self, f"PRECONDITION_FAILED - unknown delivery tag {tag}")
            return True
        queue, message, consumer = entry
        consumer.unacked -= 1
        queue.unacked -= 1
        if not queue.deleted:
            if requeue and not ack:
                queue.requeue(message)
            elif not ack:
                self.broker.dead_letter(queue, message, "rejected")
            queue.schedule()
        self.broker.notify()
        return True

    def close(self) -> None:
        """Close: requeue every unacked delivery, in order, then cancel the consumers."""
        if not self.is_open:
            return
        self.is_open = False
        pending, self.unacked = self.unacked, {}
        for tag in sorted(pending):
            queue, message, _ = pending[tag]
            queue.unacked -= 1
            if not queue.deleted:
                queue.requeue(message)
        for consumer in list(self.consumers):
            consumer.cancel()
        self.broker.notify()


class MemoryConsumer:
    """A consumer of one queue on one channel, with its prefetch."""

    def __init__(
        self,
        queue: MemoryQueue,
        channel: MemoryChannel,
        callback: Callable[[Any], None],
        *,
        prefetch: int,
        no_ack: bool,
        exclusive: bool,
    ) -> None:
        self.queue = queue
        self.channel = channel
        self.callback = callback
        self.prefetch = prefetch
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.unacked = 0
        self.active = True

    def has_room(self) -> bool:
        """Whether the prefetch allows one more delivery (0 means no limit)."""
        return (
            self.active
            and self.channel.is_open
            and (self.no_ack or self.prefetch <= 0 or self.unacked < self.prefetch)
        )

    def deliver(self, message: StoredMessage) -> None:
        """Hand ``message`` to the callback; track it unless the consumer is no-ack."""
        properties = delivered_copy(message.properties)
        if self.queue.quorum:
            properties.headers["x-delivery-count"] = message.delivery_count
        tag = self.channel.next_tag()
        if not self.no_ack:
            self.channel.unacked[tag] = (self.queue, message, self)
            self.unacked += 1
            self.queue.unacked += 1
        try:
            self.callback(MemoryDelivery(message, properties, tag, self.channel))
        except Exception:  # a broken callback must not stop the queue
            _log.exception("consumer_callback_failed", queue=self.queue.name)

    def cancel(self) -> None:
        """Stop deliveries; unacked ones stay on the channel."""
        if not self.active:
            return
        self.active = False
        if self in self.channel.consumers:
            self.channel.consumers.remove(self)
        self.queue.remove_consumer(self)


class MemoryQueue:
    """A queue: ready messages in order, consumers, and the arguments that govern them."""

    def __init__(
        self,
        broker: BrokerSide,
        name: str,
        *,
        durable: bool,
        auto_delete: bool,
        owner: object | None,
        arguments: dict[str, Any],
    ) -> None:
        self.broker = broker
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.owner = owner
        self.arguments = arguments
        self.ready: deque[StoredMessage] = deque()
        self.consumers: list[MemoryConsumer] = []
        self.unacked = 0
        """Messages delivered from this queue and not yet settled."""
        self.deleted = False
        self._next = 0
        self._had_consumer = False
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._timer: Timer | None = None

    @property
    def quorum(self) -> bool:
        """Whether this is a quorum queue."""
        return self.arguments.get("x-queue-type") == "quorum"

    def _int_argument(self, name: str) -> int | None:
        value = self.arguments.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        return None

    def _over(self, extra: StoredMessage | None = None) -> bool:
        count = len(self.ready) + (extra is not None)
        limit = self._int_argument("x-max-length")
        if limit is not None and count > limit:
            return True
        limit = self._int_argument("x-max-length-bytes")
        if limit is None:
            return False
        size = sum(len(m.body) for m in self.ready) + (len(extra.body) if extra else 0)
        return size > limit

    def put(self, message: StoredMessage) -> bool:
        """Enqueue a message; ``False`` when ``x-overflow: reject-publish*`` refused it."""
        overflow = self.arguments.get("x-overflow", "drop-head")
        if overflow != "drop-head" and self._over(message):
            if overflow == "reject-publish-dlx":
                self.broker.dead_letter(self, message, "maxlen")
            return False
        ttls = [t for t in (message.ttl, self._int_argument("x-message-ttl")) if t is not None]
        if ttls:
            message.ttl = min(ttls)
            message.expires_at = self.broker.clock.time() + message.ttl / 1000
        self.ready.append(message)
        while overflow == "drop-head" and self._over():
            self.broker.dead_letter(self, self.ready.popleft(), "maxlen")
        self.schedule()
        return True

    def requeue(self, message: StoredMessage) -> None:
        """Put a delivered message back in its place, marked redelivered."""
        message.redelivered = True
        message.delivery_count += 1
        limit = self._int_argument("x-delivery-limit")
        if self.quorum and limit is not None and message.delivery_count > limit:
            self.broker.dead_letter(self, message, "delivery_limit")
            return
        bisect.insort(self.ready, message, key=lambda m: m.seq)
        self.schedule()

    def add_consumer(
        self,
        channel: MemoryChannel,
        callback: Callable[[Any], None],
        *,
        prefetch: int,
        no_ack: bool,
        exclusive: bool,
        arguments: Mapping[str, Any] | None = None,
    ) -> MemoryConsumer:
        """Add a consumer; it gets its first deliveries on the next loop iteration.

        Consumer ``arguments`` change nothing on a queue (streams read ``x-stream-offset``).
        """
        consumer = MemoryConsumer(
            self, channel, callback, prefetch=prefetch, no_ack=no_ack, exclusive=exclusive
        )
        self.consumers.append(consumer)
        channel.consumers.append(consumer)
        self._had_consumer = True
        self.schedule()
        return consumer

    def remove_consumer(self, consumer: MemoryConsumer) -> None:
        """Remove a consumer; an auto-delete queue goes with its last one."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        if self.auto_delete and self._had_consumer and not self.consumers and not self.deleted:
            self.broker.delete_queue(self.name)
        self.broker.notify()

    def destroy(self) -> None:
        """Forget every message and consumer (the queue was deleted)."""
        self.deleted = True
        if self._timer is not None:
            self._timer.cancel()
        for consumer in list(self.consumers):
            consumer.active = False
            if consumer in consumer.channel.consumers:
                consumer.channel.consumers.remove(consumer)
        self.consumers.clear()
        self.ready.clear()

    def schedule(self) -> None:
        """Run the delivery loop of this queue soon (once, however often it is asked)."""
        loop = asyncio.get_running_loop()
        if self._scheduled_on is loop or self.deleted:
            return
        self._scheduled_on = loop
        loop.call_soon(self._pump)

    def _pick(self) -> int | None:
        # A single-active-consumer queue delivers to its first consumer only; the next
        # one takes over when it leaves.
        single = self.arguments.get("x-single-active-consumer") is True
        count = min(1, len(self.consumers)) if single else len(self.consumers)
        for step in range(count):
            index = (self._next + step) % count
            if self.consumers[index].has_room():
                return index
        return None

    def _pump(self) -> None:
        self._scheduled_on = None
        if self.deleted:
            return
        clock = self.broker.clock
        now = clock.time()
        while self.ready:
            head = self.ready[0]
            index = self._pick()
            expired = head.expires_at is not None and now >= head.expires_at
            # A TTL of 0 still reaches a consumer that is ready for it, as in RabbitMQ.
            if expired and not (head.ttl == 0 and index is not None):
                self.ready.popleft()
                self.broker.dead_letter(self, head, "expired")
                continue
            if index is None:
                break
            self.ready.popleft()
            self._next = index + 1
            self.consumers[index].deliver(head)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ready and self.ready[0].expires_at is not None:
            self._timer = clock.call_at(self.ready[0].expires_at, self.schedule)
        self.broker.notify()
