"""Running a schedule on exactly one instance: leadership and the last tick on the broker.

Each schedule has a quorum queue ``<app name>.schedule.<schedule name>`` with
``x-single-active-consumer``; every instance of the service consumes it, and the broker
delivers to one consumer at a time. The queue holds one small *state message*,
``{"last": <the epoch time of the last tick run>}``, and **the instance holding it
unacked is the leader**: it alone runs ticks. When its connection dies the broker
requeues the message to the next consumer, which takes over within moments (a kill -9
closes the socket at once; a silent network loss takes the heartbeat timeout).

Before running tick ``T`` the leader publishes ``{"last": T}`` to the queue, confirmed;
that new message comes back to it (it is the active consumer) and supersedes the one
held, which is acked. So a takeover never repeats a tick: a tick is run at most once,
and one whose run was cut short by a crash is not run again.

Missed ticks (nobody ran while they fell due: every instance down, or a takeover) are
**coalesced**: the new leader runs once, at once, for the latest tick that fell due,
then keeps the schedule. A schedule that has never run starts with the first tick
after its leader took over. Ticks are sequential: a run that outlasts the interval
makes the ticks it overlapped missed, coalesced into one run when it ends.

The leader republishes the state every minute without a tick (so a long cron interval
never trips RabbitMQ's consumer_timeout on the held message), and a standby that finds
the queue empty (a lost state message) puts a fresh one in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from burrowmq.exceptions import BurrowError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.clock import Clock
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Subscription, Transport
from burrowmq.framework.urls import redact
from burrowmq.routing.schedule import Schedule
from burrowmq.topology.model import Queue

__all__ = ["Scheduler", "schedule_queue"]

_log = get_logger()
REFRESH = 60.0
"""Seconds between republishings of the held state, and between standbys' checks."""


def schedule_queue(app_name: str, schedule: Schedule) -> Queue:
    """The leadership queue of ``schedule`` in the service ``app_name``."""
    return Queue(
        name=f"{app_name}.schedule.{schedule.name}",
        arguments={"x-queue-type": "quorum", "x-single-active-consumer": True},
    )


def _last_of(delivery: Delivery) -> float | None:
    """The last tick a state message records; ``None`` for none (or a forged body)."""
    try:
        value = json.loads(delivery.body).get("last")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return float(value)
    return None


class Scheduler:
    """Runs one schedule's ticks while this instance is its leader.

    Args:
        schedule: what to run and when.
        queue: its leadership queue's name.
        transport: the App's transport.
        builder: builds the state messages.
        clock: the time ticks follow (the transport's).
    """

    def __init__(
        self,
        schedule: Schedule,
        queue: str,
        transport: Transport,
        builder: MessageBuilder,
        clock: Clock,
    ) -> None:
        self.schedule = schedule
        self.queue = queue
        self._transport = transport
        self._builder = builder
        self._clock = clock
        self._held: Delivery | None = None
        self._held_last: float | None = None
        self._held_since = 0.0
        self._last: float | None = None  # the latest tick known run, by anyone
        self._changed = asyncio.Event()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Task[Any] | None = None
        self.ticks = 0
        """Ticks this instance ran."""

    @property
    def leader(self) -> bool:
        """Whether this instance holds the schedule's state, so runs its ticks."""
        return self._held is not None and not self._held.stale

    async def start(self) -> None:
        """Start competing for leadership (the queue must exist)."""
        self._subscription = await self._transport.consume(self.queue, self._received, prefetch=16)
        if await self._transport.message_count(self.queue) == 0 and self._held is None:
            await self._record(None)  # a first state; a leader holding one merges it away
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"burrowmq-schedule-{self.schedule.name}"
        )

    async def stop(self, timeout: float) -> None:
        """Stop: let a running tick finish (up to ``timeout``), hand leadership on."""
        task, self._task = self._task, None
        if task is not None:
            running = self._running
            if running is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(running), timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(BurrowError):
                await subscription.close()  # the held state goes back to the queue
        self._held = None

    def _received(self, delivery: Delivery) -> None:
        last = _last_of(delivery)
        held = self._held
        if held is not None and not held.stale and (last or 0.0) < (self._held_last or 0.0):
            self._settle(delivery)  # older than the one held: superseded
        else:
            self._held, self._held_last = delivery, last
            self._held_since = self._clock.time()
            if held is not None and not held.stale:
                self._settle(held)
        if last is not None and (self._last is None or last > self._last):
            self._last = last
        self._changed.set()

    def _settle(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(delivery.ack())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _record(self, last: float | None) -> None:
        outgoing = self._builder.message({"last": last, "schedule": self.schedule.name})
        await self._transport.publish(
            "", self.queue, outgoing.body, outgoing.properties, mandatory=True
        )

    async def _wait(self, seconds: float) -> None:
        """Wait ``seconds`` on the clock, or until the state changes."""
        self._changed.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    async def _loop(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except BurrowError as error:  # the broker is away: try again shortly
                _log.warning("schedule_state_failed", schedule=self.schedule.name, error=str(error))
                await self._wait(1.0)
            except Exception as exc:  # a bug must not end the schedule silently
                _log.error("schedule_loop_failed", schedule=self.schedule.name, error=str(exc))
                await self._wait(1.0)

    async def _step(self) -> None:
        now = self._clock.time()
        if not self.leader:
            self._held = None
            await self._wait(REFRESH)
            if not self.leader and await self._transport.message_count(self.queue) == 0:
                await self._record(self._last)  # the state was lost: put one back
            return
        last, schedule = self._last, self.schedule
        due = schedule.latest_at(now)
        if last is None or due <= last:
            # Nothing missed: wait for the next tick (after the last one, or after now
            # for a schedule that never ran).
            tick = schedule.next_after(now if last is None else max(last, due))
            wait = min(tick - now, REFRESH)
            if now - self._held_since >= REFRESH:
                await self._record(last)  # renew the held state (consumer_timeout)
            await self._wait(wait)
            if self._clock.time() < tick or not self.leader:
                return
            due = tick
        await self._run(due)

    async def _run(self, tick: float) -> None:
        """Record ``tick`` as run on the broker, then run it."""
        await self._record(tick)
        if not self.leader:  # lost the state meanwhile: whoever has it knows of tick
            return
        self._last = tick
        self.ticks += 1
        log = _log.bind(schedule=self.schedule.name, tick=tick)
        self._running = asyncio.ensure_future(self.schedule.func())
        try:
            await self._running
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("schedule_failed", error=redact(str(exc))[:1000], type=type(exc).__name__)
        else:
            log.debug("schedule_ran")
        finally:
            self._running = None
