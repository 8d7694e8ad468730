"""A lease on the broker: one holder at a time among the instances of a service.

A lease is a quorum queue with ``x-single-active-consumer`` holding one small *token*
message. Every instance consumes the queue; the broker delivers to one consumer at a
time, and **the instance holding the token unacked is the holder**. When its channel
dies (a kill -9 closes the socket at once; a silent network loss takes the heartbeat
timeout) the broker requeues the token to the next consumer in line, which holds the
lease from then on. Closing the subscription (a graceful stop) hands it on the same way.

- The holder republishes the token every :data:`REFRESH` seconds (the fresh copy comes
  back to it, the active consumer, and supersedes the one held, which is acked), so
  RabbitMQ's ``consumer_timeout`` never trips on the held message.
- A standby that finds the queue empty (a lost token, or the very first start) puts one
  in; a holder that receives a second token keeps one and acks the other.
- Tokens may carry state (the scheduler's last tick): ``rank`` orders them, and a token
  ranked below the one held is acked at once, so the newest state is the one held.

Both the scheduler (:mod:`burrowmq.routing.scheduler`) and the named stream consumer
(:mod:`burrowmq.routing.leased`) hold their leadership through a :class:`Lease`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from burrowmq.exceptions import BurrowError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.clock import Clock
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Subscription, Transport
from burrowmq.topology.model import Queue

__all__ = ["REFRESH", "Lease", "lease_queue", "wait_or_changed"]

_log = get_logger()
REFRESH = 60.0
"""Seconds between republishings of the held token."""


def lease_queue(name: str) -> Queue:
    """The queue of the lease ``name``: quorum, single active consumer."""
    return Queue(name=name, arguments={"x-queue-type": "quorum", "x-single-active-consumer": True})


def _equal(delivery: Delivery) -> float:
    return 0.0


async def wait_or_changed(clock: Clock, changed: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` on ``clock``, or until ``changed`` is set (it is cleared first)."""
    changed.clear()
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waiter = asyncio.ensure_future(changed.wait())
    try:
        await asyncio.wait((sleeper, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waiter.cancel()


class Lease:
    """Competes for one lease queue's token; :attr:`holder` while this instance has it.

    Args:
        queue: the lease queue's name (it must exist before :meth:`start`).
        transport: the App's transport.
        builder: builds the token messages.
        clock: the time renewals follow (the transport's).
        state: the body of a new token (called at every publish).
        rank: orders tokens; one ranked below the one held is superseded.
        on_token: told of every token received (before it is kept or dropped).
        check_every: seconds between a standby's checks for a lost token.
    """

    def __init__(
        self,
        queue: str,
        transport: Transport,
        builder: MessageBuilder,
        clock: Clock,
        *,
        state: Callable[[], dict[str, Any]],
        rank: Callable[[Delivery], float] = _equal,
        on_token: Callable[[Delivery], None] | None = None,
        check_every: float = REFRESH,
    ) -> None:
        self.queue = queue
        self._transport = transport
        self._builder = builder
        self._clock = clock
        self._state = state
        self._rank = rank
        self._on_token = on_token
        self._check_every = check_every
        self._held: Delivery | None = None
        self._held_rank = 0.0
        self._held_since = 0.0
        self._changed = asyncio.Event()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def holder(self) -> bool:
        """Whether this instance holds the token (its channel still open)."""
        return self._held is not None and not self._held.stale

    @property
    def consuming(self) -> bool:
        """Whether this instance is in line for the lease (its subscription runs)."""
        return self._subscription is not None and self._subscription.consuming

    async def start(self) -> None:
        """Join the line for the lease; put a token in if the queue has none."""
        self._subscription = await self._transport.consume(self.queue, self._received, prefetch=16)
        if await self._transport.message_count(self.queue) == 0 and self._held is None:
            await self.publish()  # a first token; a holder holding one merges it away
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"burrowmq-lease:{self.queue}"
        )

    async def stop(self) -> None:
        """Leave the line; a held token goes back to the queue, to the next in line."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(BurrowError):
                await subscription.close()
        self._held = None
        self._changed.set()

    async def publish(self) -> None:
        """Publish a token with the current state (confirmed, mandatory)."""
        outgoing = self._builder.message(self._state())
        await self._transport.publish(
            "", self.queue, outgoing.body, outgoing.properties, mandatory=True
        )

    async def acquired(self, poll: float) -> None:
        """Return once this instance holds the lease (checked at least every ``poll`` s)."""
        while not self.holder:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._changed.wait()

    async def lost(self, poll: float) -> None:
        """Return once this instance no longer holds the lease (checked every ``poll`` s).

        The broker tells a client nothing when a channel of its own closes under a held
        message, so the token's channel is looked at every ``poll`` seconds.
        """
        while self.holder:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._changed.wait()

    def _received(self, delivery: Delivery) -> None:
        if self._on_token is not None:
            self._on_token(delivery)
        rank = self._rank(delivery)
        held = self._held
        if held is not None and not held.stale and rank < self._held_rank:
            self._settle(delivery)  # older than the one held: superseded
        else:
            self._held, self._held_rank = delivery, rank
            self._held_since = self._clock.time()
            if held is not None and not held.stale:
                self._settle(held)
        self._changed.set()

    def _settle(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(delivery.ack())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _wait(self, seconds: float) -> None:
        """Wait ``seconds`` on the clock, or until a token arrives."""
        await wait_or_changed(self._clock, self._changed, seconds)

    async def _loop(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except BurrowError as error:  # the broker is away: try again shortly
                _log.warning("lease_renewal_failed", queue=self.queue, error=str(error))
                await self._wait(1.0)
            except Exception as exc:  # a bug must not end the lease silently
                _log.error("lease_loop_failed", queue=self.queue, error=str(exc))
                await self._wait(1.0)

    async def _step(self) -> None:
        if not self.holder:
            self._held = None
            await self._wait(self._check_every)
            if not self.holder and await self._transport.message_count(self.queue) == 0:
                await self.publish()  # the token was lost: put one back
            return
        held_for = self._clock.time() - self._held_since
        if held_for >= REFRESH:
            await self.publish()  # renew the held token (consumer_timeout)
            held_for = 0.0
        await self._wait(REFRESH - held_for)
