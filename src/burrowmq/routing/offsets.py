"""Stream offsets: where a stream consumer starts, what it has settled, what it stored.

- :func:`offset_argument` turns a route's ``offset=`` (``"first"``, ``"last"``,
  ``"next"``, an int, a ``datetime``, a ``timedelta`` back from now) into the
  ``x-stream-offset`` consumer argument.
- :class:`OffsetTracker` follows the deliveries of one subscription and knows the
  highest offset below which every delivery was settled (contiguous: with several
  handlers at once, one slow message holds the mark back until it is settled).
- :class:`OffsetStore` keeps a named consumer's mark on the broker, in the durable
  classic queue ``<stream>.<consumer>.offset`` (``x-max-length: 1``, ``drop-head``):
  a commit publishes the new mark with a confirm and the queue drops the old one, so
  the queue is never empty and a commit is one round trip; reading it at start
  consumes the one message and hands it back unacked.

Why a classic queue: it works alike on RabbitMQ 3.10 and 4.x and has no delivery
limit (RabbitMQ 4 drops a quorum queue's message after 20 returns, and the mark is
returned at every start). It lives on one node: should that node's disk be lost, the
consumer starts again from its ``offset=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections import deque
from typing import Any, Literal

from burrowmq.exceptions import BurrowError, ConfigurationError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Transport

__all__ = [
    "OFFSET_HEADER",
    "Offset",
    "OffsetStore",
    "OffsetTracker",
    "check_offset",
    "offset_argument",
    "offset_of",
    "offset_queue",
]

OFFSET_HEADER = "x-stream-offset"
"""The consumer argument that says where to start, and the header of each delivery."""

Offset = Literal["first", "last", "next"] | int | datetime.datetime | datetime.timedelta

_log = get_logger()
_READ_TIMEOUT = 5.0


def check_offset(offset: Any, where: str) -> Offset:
    """``offset`` if it is one a stream consumer can start at.

    Raises:
        ConfigurationError: not ``"first"``, ``"last"``, ``"next"``, an int >= 0, an
            aware ``datetime`` or a ``timedelta`` >= 0.
    """
    if offset in ("first", "last", "next"):
        return offset  # type: ignore[no-any-return]
    if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0:
        return offset
    if isinstance(offset, datetime.datetime) and offset.tzinfo is not None:
        return offset
    if isinstance(offset, datetime.timedelta) and offset >= datetime.timedelta(0):
        return offset
    raise ConfigurationError(
        f"{where}: offset= takes 'first', 'last', 'next', an offset >= 0, a timezone-aware "
        f"datetime or a timedelta back from now, got {offset!r}"
    )


def offset_argument(offset: Offset) -> str | int | datetime.datetime:
    """The ``x-stream-offset`` argument for ``offset`` (a timedelta counts back from now)."""
    if isinstance(offset, datetime.timedelta):
        return datetime.datetime.now(datetime.UTC) - offset
    return offset


def offset_of(delivery: Delivery) -> int | None:
    """The stream offset a delivery carries (``None``: none, or not an int)."""
    value = delivery.properties.headers.get(OFFSET_HEADER)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def offset_queue(stream: str, consumer: str) -> str:
    """The queue that holds the stored offset of ``consumer`` on ``stream``."""
    return f"{stream}.{consumer}.offset"


class OffsetTracker:
    """The contiguous mark of one consumer: every offset up to :attr:`done` is settled.

    Deliveries are announced in arrival order (:meth:`delivered`, which a stream gives
    in offset order) and settled in any order (:meth:`settled`). A delivery settled past
    one still running is held, unacked, until the mark reaches it: the broker sends no
    more than the prefetch beyond the mark, which bounds what a crash repeats.
    :meth:`restart` forgets what was in flight (a new subscription delivers it again).
    """

    __slots__ = ("_held", "_in_flight", "_pending", "done", "since_commit")

    def __init__(self, done: int | None = None) -> None:
        self.done = done
        """The highest offset with every delivery up to it settled (``None``: none yet)."""
        self.since_commit = 0
        """Deliveries settled since the mark was last stored."""
        self._pending: deque[int] = deque()
        self._in_flight: set[int] = set()
        self._held: dict[int, Delivery] = {}

    @property
    def in_flight(self) -> int:
        """Deliveries announced and not settled."""
        return len(self._in_flight)

    def delivered(self, offset: int) -> None:
        """A delivery of ``offset`` arrived."""
        self._pending.append(offset)
        self._in_flight.add(offset)

    def settled(self, offset: int, delivery: Delivery) -> list[Delivery]:
        """The delivery of ``offset`` was handled (or placed in the dlq).

        Returns:
            The deliveries to ack now: this one and those held behind it, once nothing
            before them runs any more; none while an earlier one still runs.
        """
        if offset not in self._in_flight:
            return [delivery]  # from a subscription before a restart: delivered again since
        self._in_flight.discard(offset)
        held = self._held
        held[offset] = delivery
        self.since_commit += 1
        pending = self._pending
        ready: list[Delivery] = []
        while pending and pending[0] in held:
            first = pending.popleft()
            ready.append(held.pop(first))
            if self.done is None or first > self.done:
                self.done = first
        return ready

    def restart(self) -> None:
        """Forget the deliveries in flight: a new subscription resumes after :attr:`done`."""
        self._pending.clear()
        self._in_flight.clear()
        self._held.clear()


class OffsetStore:
    """A named consumer's stored offset, in its queue on the broker.

    Args:
        transport: where the queue is.
        builder: stamps the messages that carry the mark.
        stream: the stream consumed.
        consumer: the consumer's name.
    """

    def __init__(
        self, transport: Transport, builder: MessageBuilder, stream: str, consumer: str
    ) -> None:
        self.queue = offset_queue(stream, consumer)
        self._transport = transport
        self._builder = builder
        self._stream = stream
        self._consumer = consumer
        self.stored: int | None = None
        """The mark last stored (or read at start)."""

    async def load(self) -> int | None:
        """Read the stored mark (``None``: nothing stored yet, or it did not parse)."""
        if not await self._transport.message_count(self.queue):
            return None
        got: asyncio.Queue[Delivery] = asyncio.Queue()
        subscription = await self._transport.consume(self.queue, got.put_nowait, prefetch=1)
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                delivery = await got.get()
        except TimeoutError:
            _log.error("stream_offset_unreadable", queue=self.queue, reason="no delivery in 5s")
            return None
        finally:
            await subscription.close()  # unacked: the mark stays in its queue
        try:
            value = json.loads(delivery.body)["offset"]
        except (ValueError, KeyError, TypeError):
            value = None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            _log.error("stream_offset_unreadable", queue=self.queue, body=delivery.body[:100])
            return None
        self.stored = value
        return value

    async def commit(self, offset: int) -> bool:
        """Store ``offset`` as the mark (confirmed); ``False`` when the broker failed it."""
        if offset == self.stored:
            return True
        body = {"stream": self._stream, "consumer": self._consumer, "offset": offset}
        message = self._builder.message(body)
        try:
            await self._transport.publish(
                "", self.queue, message.body, message.properties, mandatory=True
            )
        except BurrowError as exc:
            _log.warning("stream_offset_commit_failed", queue=self.queue, error=str(exc))
            return False
        self.stored = offset
        return True


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
