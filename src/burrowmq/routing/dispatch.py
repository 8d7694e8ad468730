"""Dispatch: one queue's deliveries handed to a fixed pool of workers.

A :class:`Dispatcher` owns one subscription and as many worker tasks as its concurrency;
deliveries wait in a local buffer bounded by the prefetch, and each worker takes the
next one through the route's pipeline. No task is created per message. What a delivery
becomes is the pipeline's business: the dispatcher only decides when it runs.

- A delivery whose channel is gone is skipped: the broker has requeued it already.
- A redelivered message runs alone, once every running handler has finished: it may be
  the one that crashed the last consumer, and must not take innocent messages down with
  it (the pipeline sends the acks of what finished before it runs).
- Stopping cancels the subscription, lets running handlers finish (bounded), then closes
  the channel; what was not settled goes back to the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import structlog

from burrowmq.framework.instrument import Hooks
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import (
    ConsumerArguments,
    Delivery,
    DeliveryCallback,
    Subscription,
    Transport,
)

__all__ = ["Consumer", "Dispatcher", "Handle"]

Handle = Callable[[Delivery], Awaitable[None]]
"""Takes one delivery through its pipeline; settles it (or leaves it to the broker)."""


class Consumer(Protocol):
    """What the App runs and asks for health: a :class:`Dispatcher`, or a consumer that
    runs one only while it holds a lease (:class:`~burrowmq.routing.leased.LeasedConsumer`)."""

    @property
    def queue(self) -> str:
        """The queue consumed."""
        ...

    @property
    def name(self) -> str:
        """The handler's name."""
        ...

    @property
    def consuming(self) -> bool:
        """Whether it runs as it should (consuming, or standing by for its lease)."""
        ...

    @property
    def in_flight(self) -> int:
        """Deliveries being handled now."""
        ...

    @property
    def last_delivery(self) -> float | None:
        """When the last delivery came (``time.monotonic()``)."""
        ...

    async def start(self) -> None:
        """Start consuming."""
        ...

    async def stop(self, timeout: float) -> None:
        """Stop, letting handlers finish for up to ``timeout`` seconds."""
        ...

    def abandon(self) -> int:
        """Cancel the running handlers now; return how many there were."""
        ...


_log = get_logger()
_bind = structlog.contextvars.bind_contextvars
_STOP = None


class Dispatcher:
    """Consumes one queue and runs each delivery through ``handle`` on a worker pool.

    Args:
        queue: the queue consumed.
        handle: runs one delivery (a pipeline's ``run``); must not raise.
        transport: where to consume.
        prefetch: deliveries the broker may send ahead (at least ``concurrency``).
        concurrency: deliveries handled at once (worker tasks).
        name: names the worker tasks and the log lines (the handler or service).
        context: log context each worker binds once (the same for every delivery).
        hooks: the App's instruments (``None``: none).
        arguments: the consumer's arguments (a stream's offset), if any.
        track: told of each delivery as it arrives, before it waits for a worker (a
            stream's offset tracker); ``None``: nothing is done per delivery for it.
    """

    def __init__(
        self,
        queue: str,
        handle: Handle,
        *,
        transport: Transport,
        prefetch: int,
        concurrency: int,
        name: str,
        context: Mapping[str, Any] | None = None,
        hooks: Hooks | None = None,
        arguments: ConsumerArguments | None = None,
        track: DeliveryCallback | None = None,
    ) -> None:
        self.queue = queue
        self._arguments = arguments
        self._track = track
        self._hooks = hooks
        # Told of each handler's start and end only if an instrument asks for it: those
        # that report how many run read self.in_flight instead, when asked.
        self._handling_hooks = hooks if hooks is not None and hooks.watches_handling else None
        self.last_delivery: float | None = None
        """When the last delivery came (``time.monotonic()``), for health (``None``: none yet)."""
        self.name = name
        self._handle = handle
        self._transport = transport
        self._prefetch = max(prefetch, concurrency)
        self._concurrency = concurrency
        self._context = dict(context or {})
        self._buffer: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._stopping = False
        self.in_flight = 0
        self._solo = False
        self._solo_lock = asyncio.Lock()
        self._solo_done = asyncio.Event()
        self._drained: asyncio.Event | None = None

    @property
    def prefetch(self) -> int:
        """Deliveries the broker may send ahead."""
        return self._prefetch

    @property
    def concurrency(self) -> int:
        """Deliveries handled at once."""
        return self._concurrency

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    async def start(self) -> None:
        """Start the workers, then the subscription."""
        self._workers = [
            asyncio.get_running_loop().create_task(
                self._work(), name=f"burrowmq-worker:{self.name}"
            )
            for _ in range(self._concurrency)
        ]
        try:
            if self._track is None and self._arguments is None:
                self._subscription = await self._transport.consume(
                    self.queue, self._deliver, prefetch=self._prefetch
                )
            else:
                self._subscription = await self._transport.consume(
                    self.queue, self._tracked, prefetch=self._prefetch, arguments=self._arguments
                )
        except BaseException:
            await self._stop_workers(0)
            raise
        if self._hooks is not None:
            self._hooks.consumer_started(self)
        _log.debug(
            "consumer_started",
            queue=self.queue,
            handler=self.name,
            prefetch=self._prefetch,
            concurrency=self._concurrency,
        )

    async def stop(self, timeout: float) -> None:
        """Stop taking deliveries, let in-flight handlers finish (up to ``timeout``), close.

        Deliveries not handled by then go back to the queue when the channel closes.
        """
        self._stopping = True
        if self._subscription is not None:
            await self._subscription.cancel()
        await self._stop_workers(timeout)
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
            if self._hooks is not None:
                self._hooks.consumer_stopped(self)
        _log.debug("consumer_stopped", queue=self.queue, handler=self.name)

    def abandon(self) -> int:
        """Cancel the running handlers now, during :meth:`stop` (a second Ctrl-C).

        What they were handling is not acked: it goes back to the queue when the
        channel closes, and the broker redelivers it. Nothing is lost.

        Returns:
            How many deliveries were in flight.
        """
        in_flight = self.in_flight
        self._stopping = True
        for task in self._workers:
            task.cancel()
        return in_flight

    def _deliver(self, delivery: Delivery) -> None:
        self.last_delivery = time.monotonic()
        self._buffer.put_nowait(delivery)

    def _tracked(self, delivery: Delivery) -> None:
        if self._track is not None:
            self._track(delivery)
        self.last_delivery = time.monotonic()
        self._buffer.put_nowait(delivery)

    @property
    def consuming(self) -> bool:
        """Whether the subscription runs (started, not stopped, its channel not gone)."""
        subscription = self._subscription
        return subscription is not None and not self._stopping and subscription.consuming

    async def _stop_workers(self, timeout: float) -> None:
        self._stopping = True
        for _ in self._workers:
            self._buffer.put_nowait(_STOP)
        if not self._workers:
            return
        _, pending = await asyncio.wait(self._workers, timeout=timeout)
        if pending:
            _log.warning(
                "shutdown_timeout",
                queue=self.queue,
                handler=self.name,
                cancelled=len(pending),
                timeout=timeout,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._workers = []

    async def _work(self) -> None:
        # Each worker task has its own context: what is the same for every delivery of
        # this queue is bound once here, not per message.
        _bind(queue=self.queue, **self._context)
        get = self._buffer.get
        while True:
            delivery = await get()
            if delivery is None or self._stopping:
                return  # an unstarted delivery stays unacked: the broker requeues it
            if delivery.stale:
                # Its channel is gone and the broker has put it back on the queue: handling
                # it now would only make a duplicate.
                _log.debug("stale_delivery_skipped", delivery_tag=delivery.delivery_tag)
                continue
            if delivery.redelivered:
                await self._run_alone(delivery)
                continue
            while self._solo:  # a redelivered message is running alone: wait for it
                await self._solo_done.wait()
            if self.stopping:  # (a property: mypy would take the flag for still False)
                return  # stopped while waiting: the delivery goes back to the queue
            if _gone(delivery):
                continue  # its channel went while it waited: the broker has it back
            await self._run(delivery)

    async def _run(self, delivery: Delivery) -> None:
        self.in_flight += 1
        hooks = self._handling_hooks
        if hooks is not None:
            hooks.handling(self.queue, 1)
        try:
            await self._handle(delivery)
        except Exception:  # never let one message kill a worker
            _log.exception("dispatch_failed", queue=self.queue, handler=self.name)
        finally:
            self.in_flight -= 1
            if hooks is not None:
                hooks.handling(self.queue, -1)
            if not self.in_flight and self._drained is not None:
                self._drained.set()

    async def _run_alone(self, delivery: Delivery) -> None:
        """Handle a redelivered message with no other handler running beside it.

        A redelivered message may be the one that crashed the last consumer. Run alone
        (and after the pipeline sent the acks of everything that finished before it), it
        cannot take innocent messages down with it: they would come back redelivered and
        be counted towards the poison limit with it. Redeliveries are rare, so this costs
        nothing in the normal case.
        """
        async with self._solo_lock:
            self._solo = True
            self._solo_done.clear()
            try:
                while self.in_flight:
                    self._drained = asyncio.Event()
                    await self._drained.wait()
                self._drained = None
                if delivery.stale:
                    # Its channel went while it waited (a consumer_timeout, say): the broker
                    # has put it back, and running it now would only make a duplicate.
                    _log.debug("stale_delivery_skipped", delivery_tag=delivery.delivery_tag)
                    return
                await self._run(delivery)
            finally:
                self._solo = False
                self._solo_done.set()


def _gone(delivery: Delivery) -> bool:
    """Whether the channel of ``delivery`` is gone (asked again after a wait)."""
    return delivery.stale
