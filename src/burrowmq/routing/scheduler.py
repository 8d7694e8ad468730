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

The state message is a :class:`~burrowmq.routing.lease.Lease`'s token: the lease
republishes it every minute without a tick (so a long cron interval never trips
RabbitMQ's consumer_timeout on the held message), and a standby that finds the queue
empty (a lost state message) puts a fresh one in.
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
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.framework.urls import redact
from burrowmq.routing.lease import REFRESH, Lease, lease_queue, wait_or_changed
from burrowmq.routing.schedule import Schedule
from burrowmq.topology.model import Queue

__all__ = ["Scheduler", "schedule_queue"]

_log = get_logger()


def schedule_queue(app_name: str, schedule: Schedule) -> Queue:
    """The leadership queue of ``schedule`` in the service ``app_name``."""
    return lease_queue(f"{app_name}.schedule.{schedule.name}")


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
        self._clock = clock
        self._last: float | None = None  # the latest tick known run, by anyone
        self._changed = asyncio.Event()
        self._lease = Lease(
            queue,
            transport,
            builder,
            clock,
            state=lambda: {"last": self._last, "schedule": schedule.name},
            rank=lambda delivery: _last_of(delivery) or 0.0,
            on_token=self._token,
        )
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Task[Any] | None = None
        self.ticks = 0
        """Ticks this instance ran."""

    @property
    def leader(self) -> bool:
        """Whether this instance holds the schedule's state, so runs its ticks."""
        return self._lease.holder

    async def start(self) -> None:
        """Start competing for leadership (the queue must exist)."""
        await self._lease.start()
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
        await self._lease.stop()  # the held state goes back to the queue

    def _token(self, delivery: Delivery) -> None:
        last = _last_of(delivery)
        if last is not None and (self._last is None or last > self._last):
            self._last = last
        self._changed.set()

    async def _wait(self, seconds: float) -> None:
        """Wait ``seconds`` on the clock, or until the state changes."""
        await wait_or_changed(self._clock, self._changed, seconds)

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
            await self._wait(REFRESH)
            return
        last, schedule = self._last, self.schedule
        due = schedule.latest_at(now)
        if last is None or due <= last:
            # Nothing missed: wait for the next tick (after the last one, or after now
            # for a schedule that never ran).
            tick = schedule.next_after(now if last is None else max(last, due))
            await self._wait(min(tick - now, REFRESH))
            if self._clock.time() < tick or not self.leader:
                return
            due = tick
        await self._run(due)

    async def _run(self, tick: float) -> None:
        """Record ``tick`` as run on the broker, then run it."""
        self._last, previous = tick, self._last
        try:
            await self._lease.publish()
        except BaseException:
            self._last = previous
            raise
        if not self.leader:  # lost the state meanwhile: whoever has it knows of tick
            return
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
