"""Streams of the in-memory broker: an append-only log read by consumers from an offset.

A :class:`MemoryStream` is a queue (``x-queue-type: stream``) that keeps every message
with its offset (0, 1, 2, ... in publish order) instead of handing each to one consumer.
Each consumer reads the log from where its ``x-stream-offset`` argument says (``"first"``,
``"last"``, ``"next"``, an offset, or a ``datetime``: the first message that arrived at
or after it; ``"next"`` without one), up to its prefetch; an ack only frees credit, as on
RabbitMQ, and every delivery carries its offset in the ``x-stream-offset`` header.
Retention is ``x-max-length-bytes`` (whole messages dropped from the head; RabbitMQ drops
whole segments, so it keeps more); ``x-max-age`` is accepted and not applied.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any

from burrowmq.exceptions import TopologyError
from burrowmq.framework.log import get_logger
from burrowmq.memory.message import StoredMessage, delivered_copy
from burrowmq.memory.queue import MemoryChannel, MemoryConsumer, MemoryDelivery, MemoryQueue

__all__ = ["MemoryStream", "StreamConsumer"]

OFFSET_HEADER = "x-stream-offset"
_log = get_logger()


class StreamConsumer(MemoryConsumer):
    """A consumer of a stream: its place in the log (the next offset it will get)."""

    cursor: int = 0

    def deliver_at(self, message: StoredMessage, offset: int) -> None:
        """Hand the message at ``offset`` to the callback, its offset in a header."""
        properties = delivered_copy(message.properties)
        properties.headers[OFFSET_HEADER] = offset
        tag = self.channel.next_tag()
        self.channel.unacked[tag] = (self.queue, message, self)
        self.unacked += 1
        self.queue.unacked += 1
        self.cursor = offset + 1
        try:
            self.callback(MemoryDelivery(message, properties, tag, self.channel))
        except Exception:  # a broken callback must not stop the stream
            _log.exception("consumer_callback_failed", queue=self.queue.name)


class MemoryStream(MemoryQueue):
    """A stream: messages kept in order with their offsets, read by every consumer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[StoredMessage] = []
        self.arrivals: list[float] = []
        self.first = 0
        """The offset of ``log[0]`` (what retention dropped lies before it)."""
        self._bytes = 0

    @property
    def next_offset(self) -> int:
        """The offset the next message will get."""
        return self.first + len(self.log)

    def put(self, message: StoredMessage) -> bool:
        """Append a message; retention drops the oldest past ``x-max-length-bytes``."""
        self.log.append(message)
        self.arrivals.append(time.time())
        self._bytes += len(message.body)
        limit = self._int_argument("x-max-length-bytes")
        while limit is not None and self._bytes > limit and len(self.log) > 1:
            dropped = self.log.pop(0)
            self.arrivals.pop(0)
            self._bytes -= len(dropped.body)
            self.first += 1
        self.schedule()
        return True

    def requeue(self, message: StoredMessage) -> None:
        """Nothing to put back: a stream keeps every message (a nack frees credit only)."""

    def start_offset(self, value: Any) -> int:
        """The offset a consumer with ``x-stream-offset: value`` starts at.

        Raises:
            TopologyError: a value RabbitMQ would refuse.
        """
        if value is None or value == "next":
            return self.next_offset
        if value == "first":
            return self.first
        if value == "last":
            return max(self.first, self.next_offset - 1)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return max(value, self.first)
        if isinstance(value, datetime.datetime):
            moment = value.timestamp()
            for index, arrived in enumerate(self.arrivals):
                if arrived >= moment:
                    return self.first + index
            return self.next_offset
        raise TopologyError(
            f"cannot consume from queue {self.name!r}: PRECONDITION_FAILED - invalid "
            f"x-stream-offset {value!r}",
            entity=f"queue {self.name!r}",
            argument=OFFSET_HEADER,
        )

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
        """Add a consumer reading from its ``x-stream-offset``.

        Raises:
            TopologyError: no prefetch, or no acks, which RabbitMQ refuses for streams.
        """
        if no_ack or prefetch <= 0:
            raise TopologyError(
                f"cannot consume from queue {self.name!r}: PRECONDITION_FAILED - a stream "
                "consumer needs manual acks and a prefetch count",
                entity=f"queue {self.name!r}",
            )
        start = self.start_offset((arguments or {}).get(OFFSET_HEADER))
        consumer = StreamConsumer(
            self, channel, callback, prefetch=prefetch, no_ack=False, exclusive=exclusive
        )
        consumer.cursor = start
        self.consumers.append(consumer)
        channel.consumers.append(consumer)
        self.schedule()
        return consumer

    def destroy(self) -> None:
        """Forget the log and every consumer (the stream was deleted)."""
        super().destroy()
        self.log.clear()
        self.arrivals.clear()

    def _pump(self) -> None:
        self._scheduled_on = None
        if self.deleted:
            return
        for consumer in list(self.consumers):
            if not isinstance(consumer, StreamConsumer):
                continue
            consumer.cursor = max(consumer.cursor, self.first)
            while consumer.has_room() and consumer.cursor < self.next_offset:
                offset = consumer.cursor
                consumer.deliver_at(self.log[offset - self.first], offset)
        self.broker.notify()
