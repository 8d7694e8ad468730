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
- :func:`read_mark` reads such a mark without taking it away (``burrowmq stream info``
  does too), and :func:`stream_bounds` finds a stream's first and last offset over
  AMQP alone (a consumer from ``"first"``, and one from ``"last"`` read to its end).

Hostile marks: anyone who may publish to the queue can forge a mark. One that is not
JSON, not an int, negative, or beyond the stream's last offset (it would make the
consumer wait for offsets that do not exist yet, skipping them when they come; a stream
deleted and declared again leaves such a mark behind) is ignored with a warning naming
the queue, and the consumer starts at its route's ``offset=``: it repeats, it never
skips. An offset queue deleted while the consumer runs is declared again at the next
commit (``stream_offset_queue_recreated``), and a graceful stop stores the mark even
when it did not move, so that a queue deleted in between holds it again.

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
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from burrowmq.exceptions import BurrowError, ConfigurationError, Unroutable
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Transport

__all__ = [
    "OFFSET_HEADER",
    "OFFSET_QUEUE_ARGUMENTS",
    "Offset",
    "OffsetStore",
    "OffsetTracker",
    "check_offset",
    "offset_argument",
    "offset_of",
    "offset_queue",
    "parse_mark",
    "read_mark",
    "stream_bounds",
]

OFFSET_HEADER = "x-stream-offset"
"""The consumer argument that says where to start, and the header of each delivery."""

Offset = Literal["first", "last", "next"] | int | datetime.datetime | datetime.timedelta

OFFSET_QUEUE_ARGUMENTS: Mapping[str, Any] = MappingProxyType(
    {"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "drop-head"}
)
"""The arguments of a named consumer's offset queue: one message, the newest."""

_log = get_logger()
_READ_TIMEOUT = 5.0
_IDLE = 1.0  # no delivery for this long after one came: the end of the stream
_IDLE_BEFORE_IGNORING = 2.0  # longer before calling a mark past the end: it costs a replay
_SCAN_PREFETCH = 500


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
        """Read the stored mark (``None``: nothing stored yet, or it was ignored).

        A mark that does not parse, or lies beyond the stream's last offset, is ignored
        with a ``stream_offset_ignored`` warning naming the queue.
        """
        value, problem = await read_mark(self._transport, self.queue)
        if value is not None:
            highest = await _highest_offset(
                self._transport,
                self._stream,
                "last",
                reached=lambda seen: seen >= value,
                idle=_IDLE_BEFORE_IGNORING,
            )
            if highest is None:
                problem = f"it holds offset {value}, but stream {self._stream!r} is empty"
            elif highest < value:
                problem = (
                    f"it holds offset {value}, beyond the last offset {highest} "
                    f"of stream {self._stream!r}"
                )
        if problem is not None:
            _log.warning(
                "stream_offset_ignored",
                queue=self.queue,
                reason=problem,
                outcome="the consumer starts at its route's offset=",
            )
            return None
        self.stored = value
        return value

    async def commit(self, offset: int, *, force: bool = False) -> bool:
        """Store ``offset`` as the mark (confirmed); ``False`` when the broker failed it.

        Args:
            offset: the new mark.
            force: publish it even when it is the mark last stored (at stop).

        A queue deleted under the consumer is declared again, with a
        ``stream_offset_queue_recreated`` warning, and the mark published into it.
        """
        if offset == self.stored and not force:
            return True
        body = {"stream": self._stream, "consumer": self._consumer, "offset": offset}
        message = self._builder.message(body)
        publish = self._transport.publish
        try:
            try:
                await publish("", self.queue, message.body, message.properties, mandatory=True)
            except Unroutable:
                await self._transport.declare_queue(
                    self.queue, durable=True, arguments=OFFSET_QUEUE_ARGUMENTS
                )
                _log.warning(
                    "stream_offset_queue_recreated",
                    queue=self.queue,
                    reason="the queue of the mark was gone (deleted while the consumer ran)",
                    offset=offset,
                )
                await publish("", self.queue, message.body, message.properties, mandatory=True)
        except BurrowError as exc:
            _log.warning("stream_offset_commit_failed", queue=self.queue, error=str(exc))
            return False
        self.stored = offset
        return True


def parse_mark(body: bytes) -> tuple[int | None, str | None]:
    """The offset a mark's body holds, or why it holds none that can be used.

    Returns:
        ``(offset, None)``, or ``(None, reason)`` for a body that is not JSON, has no
        ``offset``, or whose offset is not an int >= 0.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None, f"it is not JSON: {body[:60]!r}"
    value = document.get("offset") if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"its offset is not an integer: {body[:60]!r}"
    if value < 0:
        return None, f"its offset is negative: {value}"
    return value, None


async def read_mark(transport: Transport, queue: str) -> tuple[int | None, str | None]:
    """The mark in the offset queue ``queue``, read and handed back unacked.

    Returns:
        ``(None, None)`` when the queue is missing or empty; else what
        :func:`parse_mark` says of its message (or ``(None, reason)`` when it did not
        come within five seconds).
    """
    if not await transport.message_count(queue):
        return None, None
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    subscription = await transport.consume(queue, got.put_nowait, prefetch=1)
    try:
        async with asyncio.timeout(_READ_TIMEOUT):
            delivery = await got.get()
    except TimeoutError:
        return None, f"its message did not come within {_READ_TIMEOUT:.0f}s"
    finally:
        await subscription.close()  # unacked: the mark stays in its queue
    return parse_mark(delivery.body)


async def stream_bounds(transport: Transport, stream: str) -> tuple[int, int] | None:
    """The first and last offset of ``stream`` (``None``: it holds no message).

    Read over AMQP: the first delivery of a consumer from ``"first"``, then a consumer
    from ``"last"`` (the start of the newest chunk) read until nothing more comes.
    """
    first = await _highest_offset(transport, stream, "first", reached=lambda seen: True)
    if first is None:
        return None
    last = await _highest_offset(transport, stream, "last", reached=lambda seen: False)
    return first, max(first, last if last is not None else first)


async def _highest_offset(
    transport: Transport,
    stream: str,
    start: str,
    *,
    reached: Callable[[int], bool],
    idle: float = _IDLE,
) -> int | None:
    """The highest offset a consumer of ``stream`` from ``start`` sees.

    It reads until ``reached(offset)`` holds, or nothing came for a moment (the end),
    acking as it goes (on a stream an ack only frees credit). ``None``: no delivery
    within five seconds, an empty stream.

    Raises:
        ConfigurationError: ``stream`` is a queue, not a stream (nothing is taken from it).
    """
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    subscription = await transport.consume(
        stream, got.put_nowait, prefetch=_SCAN_PREFETCH, arguments={OFFSET_HEADER: start}
    )
    highest: int | None = None
    wait = _READ_TIMEOUT
    try:
        while True:
            try:
                async with asyncio.timeout(wait):
                    delivery = await got.get()
            except TimeoutError:
                return highest
            wait = idle
            offset = offset_of(delivery)
            if offset is None:  # left unacked: it goes back to its queue
                raise ConfigurationError(
                    f"queue {stream!r} is not a stream: its deliveries carry no {OFFSET_HEADER}"
                )
            await delivery.ack()
            if highest is None or offset > highest:
                highest = offset
            if reached(offset):
                return highest
    finally:
        await subscription.close()


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
