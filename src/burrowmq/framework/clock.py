"""Clocks: the wall time that message TTLs, delays and schedules run on.

The AMQP transport runs on :class:`SystemClock`: the broker keeps the time. The memory
transport takes any :class:`Clock`; with a :class:`FakeClock` a test moves time on at
will (``await clock.advance(timedelta(hours=1))``), and a delay or a schedule of an hour
takes milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from burrowmq.exceptions import ConfigurationError

__all__ = ["Clock", "FakeClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """A callback :meth:`Clock.call_at` will run; ``cancel()`` stops it."""

    def cancel(self) -> None:
        """Do not run the callback (nothing happens if it ran already)."""
        ...


class Clock(Protocol):
    """Wall time in epoch seconds, and waits on it."""

    def time(self) -> float:
        """Seconds since the epoch, now."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once the clock reads ``when`` (epoch seconds)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real time: :func:`time.time` and the running event loop's timers."""

    def time(self) -> float:
        """Seconds since the epoch, now."""
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at ``when`` (epoch seconds), on the running loop."""
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        await asyncio.sleep(max(0.0, seconds))


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that stands still until a test moves it with :meth:`advance`.

    Args:
        start: the time it reads at first (default: the real time now); a
            timezone-aware datetime or epoch seconds.
    """

    def __init__(self, start: datetime | float | None = None) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ConfigurationError("FakeClock(start=...) needs a timezone-aware datetime")
            start = start.timestamp()
        self._now = time.time() if start is None else float(start)
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """Seconds since the epoch, as this clock reads now."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` when :meth:`advance` reaches ``when``."""
        timer = _FakeTimer(when, callback)
        if when <= self._now:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    @staticmethod
    def _fire(timer: _FakeTimer) -> None:
        if not timer.cancelled:
            timer.cancelled = True
            timer.callback()

    async def sleep(self, seconds: float) -> None:
        """Wait until :meth:`advance` moved the clock ``seconds`` on."""
        future = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_at(self._now + max(0.0, seconds), wake)
        try:
            await future
        finally:
            timer.cancel()

    async def advance(
        self,
        by: timedelta | float,
        *,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Move the clock ``by`` on, running every timer due on the way, in time order.

        After each timer the event loop runs what it set off (``settle``, if given,
        is awaited too: the test client waits for its broker to go idle), so a message
        that goes through several delay queues, or a schedule that ticks many times,
        moves exactly as it would in real time.

        Raises:
            ConfigurationError: a negative duration.
        """
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ConfigurationError(f"cannot move a clock back ({by!r})")
        target = self._now + seconds
        await self._settle(settle)
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            self._fire(timer)
            await self._settle(settle)
        self._now = target
        await self._settle(settle)

    @staticmethod
    async def _settle(settle: Callable[[], Awaitable[None]] | None) -> None:
        for _ in range(8):
            await asyncio.sleep(0)
        if settle is not None:
            await settle()
            for _ in range(8):
                await asyncio.sleep(0)
