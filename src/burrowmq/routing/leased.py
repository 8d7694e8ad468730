"""A consumer that reads only while its instance holds a lease: one reader at a time.

A named stream consumer (``router.stream("events", consumer="proj")``) runs on every
instance of a service, but one mark can only be moved by one reader. So each instance
stands in line for the lease ``<stream>.<consumer>.lease`` (:mod:`burrowmq.routing.lease`)
and a :class:`LeasedConsumer` starts a fresh stream dispatcher only once it holds it:

- **Taking over.** The new holder reads the stored mark and consumes just after it, so
  nothing is skipped. What the previous reader settled after its last commit is read
  again: after a kill -9 at most ``COMMIT_EVERY`` + prefetch messages (or a second's
  worth); after a graceful stop nothing, since it stores its mark before it lets the
  lease go.
- **Losing the lease** (its channel closed: the connection dropped, the broker closed
  it): the reader stops at once. No delivery is handled any more (the stream route's
  settle step asks :attr:`Lease.holder` before each one), the subscription is cancelled,
  running handlers are cancelled, and what was settled is stored as the mark. The
  instance then stands in line again (the lease's subscription is restored after a
  reconnection).
- **Stopping** while a reader starts or stops (a takeover at shutdown, when another
  instance has just let its lease go) waits for that step to finish rather than
  cancelling it half-way, then stops the reader: nothing of it is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from burrowmq.framework.log import get_logger
from burrowmq.routing.dispatch import Dispatcher
from burrowmq.routing.lease import Lease

__all__ = ["POLL", "LeasedConsumer"]

_log = get_logger()
POLL = 0.25
"""Seconds between looks at whether the lease is still held (and at a standby's)."""
_START_TIMEOUT = 10.0  # what a stop waits, beyond its drain, for a reader's start


class LeasedConsumer:
    """Runs a dispatcher made by ``factory`` while ``lease`` is held; stands by otherwise.

    Args:
        lease: the lease to hold.
        factory: makes a new dispatcher for each term as holder.
        queue: the queue consumed (for health and logs).
        name: the handler's name.
    """

    def __init__(
        self, lease: Lease, factory: Callable[[], Dispatcher], *, queue: str, name: str
    ) -> None:
        self.queue = queue
        self.name = name
        self.lease = lease
        self._factory = factory
        self._active: Dispatcher | None = None
        self._transition: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_delivery: float | None = None
        self.terms = 0
        """How many times this instance became the reader."""

    @property
    def reading(self) -> bool:
        """Whether this instance is the reader now."""
        return self._active is not None

    @property
    def consuming(self) -> bool:
        """Whether it is in line for the lease and, when the reader, consuming."""
        active = self._active
        return self.lease.consuming and (active is None or active.consuming)

    @property
    def in_flight(self) -> int:
        """Deliveries being handled now."""
        return 0 if self._active is None else self._active.in_flight

    @property
    def last_delivery(self) -> float | None:
        """When the last delivery came (``time.monotonic()``), in any term."""
        if self._active is not None and self._active.last_delivery is not None:
            self._last_delivery = self._active.last_delivery
        return self._last_delivery

    async def start(self) -> None:
        """Stand in line for the lease; read whenever it is held."""
        await self.lease.start()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"burrowmq-leased:{self.name}"
        )

    async def stop(self, timeout: float) -> None:
        """Stop reading (handlers get ``timeout``, the mark is stored), then let go."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        transition, self._transition = self._transition, None
        if transition is not None:
            # A dispatcher cut short in its start (reading its mark, subscribing) or its
            # stop would leave half of itself running: it finishes first.
            await asyncio.wait([transition], timeout=timeout + _START_TIMEOUT)
        active, self._active = self._active, None
        if active is not None:
            with contextlib.suppress(Exception):
                await active.stop(timeout)
        await self.lease.stop()  # after the mark is stored: the next reader starts after it

    def abandon(self) -> int:
        """Cancel the running handlers now (a second Ctrl-C during the drain)."""
        return 0 if self._active is None else self._active.abandon()

    async def _run(self) -> None:
        while True:
            await self.lease.acquired(POLL)
            dispatcher = self._active = self._factory()
            start = self._transition = asyncio.ensure_future(dispatcher.start())
            try:
                await asyncio.shield(start)  # a stop() meanwhile waits for it: see stop()
            except Exception as error:  # the broker went away: stand in line again
                self._active = self._transition = None
                _log.warning("stream_takeover_failed", queue=self.queue, error=str(error))
                with contextlib.suppress(Exception):
                    await dispatcher.stop(0)
                await asyncio.sleep(1.0)
                continue
            self._transition = None
            self.terms += 1
            _log.info("stream_reader_started", queue=self.queue, lease=self.lease.queue)
            await self.lease.lost(POLL)
            _log.warning("stream_lease_lost", queue=self.queue, lease=self.lease.queue)
            last = dispatcher.last_delivery
            if last is not None:
                self._last_delivery = last
            self._active = None
            stopping = self._transition = asyncio.ensure_future(dispatcher.stop(0))
            with contextlib.suppress(Exception):
                await asyncio.shield(stopping)
            self._transition = None
