"""Stream routes: a RabbitMQ stream read from an offset, with a named consumer's mark.

A stream route (``router.stream("events", consumer="billing-projection")``) declares
the stream (``x-queue-type: stream``) and consumes it with manual acks and a prefetch,
from where its ``offset=`` says or, for a named consumer, just after the mark it stored
(:mod:`burrowmq.routing.offsets`). It differs from a queue route in its settle step and
its dispatcher only:

- :class:`StreamSettle`: an ack frees credit (a stream keeps its messages); a stream
  cannot dead-letter, so a failure (after the route's retries, all waited in process: no
  delay queues) or a payload that does not decode is published, ``mandatory`` and
  confirmed, to the durable queue ``<consumer>.dlq`` (``<stream>.dlq`` for an unnamed
  consumer) with the same ``x-exception-*`` headers as a queue's dead letters, and only
  then settled. Nothing is ever nacked: RabbitMQ 3.x closes the connection of a client
  that nacks a stream delivery.
- :class:`StreamDispatcher`: announces each delivery's offset as it arrives, subscribes
  (and resubscribes after a reconnection) after the last contiguous settled offset, and
  stores a named consumer's mark every :data:`COMMIT_EVERY` settled messages or
  :data:`COMMIT_INTERVAL` seconds, and at stop (always, even when it did not move).

At-least-once: the mark only ever passes settled messages, so nothing is skipped, and
a delivery settled past a slower one is acked only when the mark reaches it, so the
broker never runs more than the prefetch ahead of the mark. A graceful stop repeats
nothing (the mark is stored after the handlers finished). After a crash (kill -9), a
restart repeats at most ``COMMIT_EVERY`` + prefetch messages, plus those settled while
the last commit was on its way (one round trip); when fewer than ``COMMIT_EVERY`` come
per :data:`COMMIT_INTERVAL`, at most a second's worth plus the prefetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from dataclasses import dataclass
from typing import Any

from burrowmq.exceptions import BurrowError, ConfigurationError, DecodeError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.framework.vocabulary import RESERVED_PREFIX, name_problem
from burrowmq.routing.dispatch import Dispatcher, Handle
from burrowmq.routing.lease import Lease, lease_queue
from burrowmq.routing.offsets import (
    OFFSET_HEADER,
    OFFSET_QUEUE_ARGUMENTS,
    Offset,
    OffsetStore,
    OffsetTracker,
    check_offset,
    offset_argument,
    offset_of,
    offset_queue,
    stop_task,
)
from burrowmq.routing.pipeline import Inbound
from burrowmq.routing.settle import dead_letter_headers
from burrowmq.routing.signals import Reject
from burrowmq.topology.arguments import QUEUE_ARGUMENTS
from burrowmq.topology.model import Queue, Stream, Topology

__all__ = [
    "COMMIT_EVERY",
    "COMMIT_INTERVAL",
    "StreamDispatcher",
    "StreamOptions",
    "StreamSettle",
    "stream_queue",
]

COMMIT_EVERY = 1000
"""A named consumer stores its mark after this many settled messages..."""
COMMIT_INTERVAL = 1.0
"""... or this many seconds, whichever comes first (and at stop)."""

_log = get_logger()
_FIRST_PAUSE = 1.0
_MAX_PAUSE = 60.0


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a route reads its stream.

    Attributes:
        consumer: the name under which its mark is stored on the broker (``None``: no
            mark; every start begins at ``offset``).
        offset: where a consumer with no stored mark starts.
        partitions: the stream is a super stream of that many partitions, read by the
            instances running the consumer as a group (``None``: a plain stream).
    """

    consumer: str | None = None
    offset: Offset = "next"
    partitions: int | None = None

    def __post_init__(self) -> None:
        partitions = self.partitions
        if partitions is not None:
            if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
                raise ConfigurationError(
                    f"stream partitions= takes a number >= 1, got {partitions!r}"
                )
            if self.consumer is None:
                raise ConfigurationError(
                    "a partitioned stream is read by a consumer group: pass consumer="
                )
        consumer = self.consumer
        if consumer is not None:
            if not isinstance(consumer, str) or not consumer:
                raise ConfigurationError(f"stream consumer= takes a name, got {consumer!r}")
            if (problem := name_problem(consumer, "queue")) is not None:
                raise ConfigurationError(f"stream consumer= {problem}")
            if consumer.startswith(RESERVED_PREFIX):
                raise ConfigurationError(
                    f"stream consumer names cannot start with 'amq.': {consumer!r}"
                )
        object.__setattr__(self, "offset", check_offset(self.offset, "stream"))

    def dead_letter_queue(self, stream: str) -> str:
        """Where failed messages of ``stream`` go: ``<consumer>.dlq``."""
        return f"{self.consumer or stream}.dlq"

    def lease_queue(self, stream: str) -> str:
        """The queue of a named consumer's lease: ``<stream>.<consumer>.lease``."""
        return f"{stream}.{self.consumer}.lease"

    def members_queue(self, stream: str) -> str:
        """The membership queue of a consumer group: ``<stream>.<consumer>.members``."""
        return f"{stream}.{self.consumer}.members"

    def streams(self, stream: str) -> tuple[str, ...]:
        """The streams read: ``stream``, or its partitions ``stream-0`` .. ``stream-(N-1)``."""
        if self.partitions is None:
            return (stream,)
        return tuple(f"{stream}-{i}" for i in range(self.partitions))

    def topology(
        self, stream: str, *, origin: str, arguments: dict[str, Any] | None = None
    ) -> Topology:
        """The dead-letter queue and, for a named consumer, the queues of its mark and
        its lease (of each partition's); a partitioned stream itself, with ``arguments``
        (the retention)."""
        topology = Topology()
        dlq = Queue(name=self.dead_letter_queue(stream), arguments={"x-queue-type": "quorum"})
        topology.add(dlq, origin=origin)
        if self.partitions is not None:
            retention = {k: v for k, v in (arguments or {}).items() if k != "x-queue-type"}
            topology.add(
                Stream(stream, partitions=self.partitions, arguments=retention), origin=origin
            )
            members = Queue(name=self.members_queue(stream), arguments={"x-queue-type": "classic"})
            topology.add(members, origin=origin)
        if self.consumer is not None:
            mark = dict(OFFSET_QUEUE_ARGUMENTS)
            for name in self.streams(stream):
                topology.add(
                    Queue(name=offset_queue(name, self.consumer), arguments=mark), origin=origin
                )
                topology.add(lease_queue(self.lease_queue(name)), origin=origin)
        return topology


def stream_queue(
    name: str,
    *,
    max_age: datetime.timedelta | str | None,
    max_length_bytes: int | None,
) -> Queue:
    """The stream ``name`` with its retention, as a queue to declare.

    Raises:
        ConfigurationError: a bad name, age or size.
    """
    if not isinstance(name, str) or not name or name.startswith(RESERVED_PREFIX):
        raise ConfigurationError(f"stream() takes a stream name, got {name!r}")
    if (problem := name_problem(name, "queue")) is not None:
        raise ConfigurationError(problem)
    arguments: dict[str, Any] = {"x-queue-type": "stream"}
    if max_age is not None:
        if isinstance(max_age, datetime.timedelta):
            seconds = int(max_age.total_seconds())
            if seconds < 1:
                raise ConfigurationError(f"stream {name!r}: max_age= must be at least 1s")
            max_age = f"{seconds}s"
        if (error := QUEUE_ARGUMENTS["x-max-age"].check(max_age)) is not None:
            raise ConfigurationError(f"stream {name!r}: max_age= {error}")
        arguments["x-max-age"] = max_age
    if max_length_bytes is not None:
        if (error := QUEUE_ARGUMENTS["x-max-length-bytes"].check(max_length_bytes)) is not None:
            raise ConfigurationError(f"stream {name!r}: max_length_bytes= {error}")
        arguments["x-max-length-bytes"] = max_length_bytes
    return Queue(name=name, arguments=arguments)


class StreamSettle:
    """Settles the deliveries of a stream route: ack, or a confirmed copy to its dlq.

    Args:
        transport: where the dead-letter copies are published.
        builder: builds them.
        dead_letter_queue: their queue.
        tracker: told of every settled offset.
        wake: set when enough was settled to store the mark (``None``: no mark).
        lease: the lease a named consumer reads under; while it is not held, no
            delivery is handled (``None``: no lease, every delivery is).
    """

    FAILED = "dead_lettered"
    ANSWERED = False

    def __init__(
        self,
        transport: Transport,
        builder: MessageBuilder,
        *,
        dead_letter_queue: str,
        tracker: OffsetTracker,
        wake: asyncio.Event | None = None,
        lease: Lease | None = None,
    ) -> None:
        self._transport = transport
        self._lease = lease
        self._builder = builder
        self._dlq = dead_letter_queue
        self._tracker = tracker
        self._wake = wake
        self.floor = 0
        """Offsets below it were settled before this subscription began: skipped."""
        self.stopping = False

    async def admit(self, inbound: Inbound) -> bool:
        if self._lease is not None and not self._lease.holder:
            return False  # another instance reads now: left unsettled, the reader stops
        offset = inbound.offset = offset_of(inbound.delivery)
        if offset is not None and offset < self.floor:
            await self._settled(inbound)  # (the broker starts at a chunk's first message)
            return False
        return True

    async def handled(self, inbound: Inbound, result: Any) -> None:
        await self._settled(inbound)

    async def invalid(self, inbound: Inbound, error: DecodeError) -> None:
        await self._dead_letter(inbound, error)

    async def rejected(self, inbound: Inbound, signal: Reject) -> None:
        await self._dead_letter(inbound, signal)

    async def failed(self, inbound: Inbound, error: BaseException) -> None:
        await self._dead_letter(inbound, error)

    def can_retry(self, inbound: Inbound) -> bool:
        return True

    async def park(self, inbound: Inbound, delay: float) -> bool:
        return False  # a stream has no delay queues: every retry waits in process

    async def _settled(self, inbound: Inbound) -> None:
        if inbound.offset is None:
            await inbound.delivery.ack()
            return
        tracker = self._tracker
        # Acked only once the mark passes it (an ack on a gone channel is a no-op).
        for delivery in tracker.settled(inbound.offset, inbound.delivery):
            await delivery.ack()
        if self._wake is not None and tracker.since_commit >= COMMIT_EVERY:
            self._wake.set()

    async def _dead_letter(self, inbound: Inbound, exc: BaseException) -> None:
        """Publish a confirmed copy to the dlq, then settle; retried while it fails."""
        delivery = inbound.delivery
        headers, reason = dead_letter_headers(inbound, exc)
        copy = self._builder.copy(delivery.properties, headers=headers, persistent=True)
        pause = _FIRST_PAUSE
        while True:
            try:
                await self._transport.publish("", self._dlq, delivery.body, copy, mandatory=True)
                break
            except BurrowError as error:
                if self.stopping or delivery.stale:
                    _log.error(
                        "dead_letter_failed",
                        queue=self._dlq,
                        error=str(error),
                        outcome="left unsettled: read again after the mark when it resumes",
                    )
                    return
                _log.error(
                    "dead_letter_failed",
                    queue=self._dlq,
                    error=str(error),
                    outcome=f"tried again in {pause:.0f}s; the mark waits for it",
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
        await self._settled(inbound)
        _log.info(
            "message_dead_lettered",
            queue=self._dlq,
            offset=inbound.offset,
            exception_type=type(exc).__name__,
            reason=reason[:200],
        )


class StreamDispatcher(Dispatcher):
    """A :class:`Dispatcher` of a stream: resumes after its mark, and stores it.

    Args:
        queue: the stream.
        handle: the route's pipeline, settled by ``settle``.
        settle: the route's settle step.
        tracker: the consumer's mark.
        store: where a named consumer stores it (``None``: unnamed).
        offset: where to start without a mark.
        **options: the :class:`Dispatcher`'s.
    """

    def __init__(
        self,
        queue: str,
        handle: Handle,
        *,
        settle: StreamSettle,
        tracker: OffsetTracker,
        store: OffsetStore | None,
        offset: Offset,
        wake: asyncio.Event | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            queue, handle, arguments=self._consumer_arguments, track=self._track, **options
        )
        self._settle = settle
        self._tracker = tracker
        self._store = store
        self._offset = offset
        self._wake = wake or asyncio.Event()
        self._committer: asyncio.Task[None] | None = None

    @property
    def mark(self) -> int | None:
        """The highest offset with everything up to it settled (``None``: none yet)."""
        return self._tracker.done

    def _track(self, delivery: Delivery) -> None:
        offset = offset_of(delivery)
        if offset is not None:
            self._tracker.delivered(offset)

    def _consumer_arguments(self) -> dict[str, Any]:
        """Where this (re)subscription starts: after the mark, else at ``offset=``."""
        tracker = self._tracker
        tracker.restart()
        if tracker.done is None:
            self._settle.floor = 0
            return {OFFSET_HEADER: offset_argument(self._offset)}
        resume = self._settle.floor = tracker.done + 1
        return {OFFSET_HEADER: resume}

    async def start(self) -> None:
        """Read the stored mark, start storing it, then consume after it."""
        store = self._store
        if store is not None:
            stored = await store.load()
            if stored is not None:
                self._tracker.done = stored
            _log.info("stream_resumed", queue=self.queue, consumer=store.queue, stored=stored)
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_loop(), name=f"burrowmq-stream-commit:{self.name}"
            )
        try:
            await super().start()
        except BaseException:
            await stop_task(self._committer)
            self._committer = None
            raise

    async def stop(self, timeout: float) -> None:
        """Stop as a dispatcher does, then store the mark of what was settled."""
        self._settle.stopping = True
        await super().stop(timeout)
        await stop_task(self._committer)
        self._committer = None
        if self._store is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._commit(force=True)  # even unmoved: its queue may be new

    async def _commit(self, *, force: bool = False) -> None:
        done = self._tracker.done
        if done is None or self._store is None:
            return
        self._tracker.since_commit = 0
        await self._store.commit(done, force=force)

    async def _commit_loop(self) -> None:
        wake = self._wake
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMIT_INTERVAL):
                    await wake.wait()
            wake.clear()
            try:
                await self._commit()
            except Exception:  # never let the committer die: the next round tries again
                _log.exception("stream_offset_commit_failed", queue=self.queue)
