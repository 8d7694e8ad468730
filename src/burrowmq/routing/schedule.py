"""Schedule: a periodic job (``every=`` or ``cron=``) as a frozen value, and its ticks.

A schedule's ticks are points in time that every instance computes alike, so a tick is
named by its time: ``every=`` ticks at the multiples of the interval since the Unix
epoch (``every=timedelta(minutes=5)`` at :00, :05, ... UTC); ``cron=`` at the times a
five-field cron expression matches in the schedule's time zone (parsed by cronsim,
daylight-saving changes as cron does them). How ticks run on exactly one instance is
:mod:`burrowmq.routing.scheduler`'s.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from burrowmq.exceptions import ConfigurationError

__all__ = ["Schedule", "ScheduleFunc"]

ScheduleFunc = Callable[[], Awaitable[Any]]


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"schedule tz={tz!r} is not a known time zone") from exc


def _check_cron(expression: str, zone: tzinfo) -> None:
    try:
        from cronsim import CronSim, CronSimError
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigurationError("cron schedules need the cronsim package") from exc
    try:
        CronSim(expression, datetime.now(zone))
    except CronSimError as exc:
        raise ConfigurationError(f"schedule cron={expression!r} is invalid: {exc}") from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """A function run periodically on one instance of the service at a time.

    Args:
        func: an async function taking no arguments.
        every: the interval (a timedelta or seconds, at least one second).
        cron: a five-field cron expression (minute hour day month weekday) instead.
        name: names the schedule (and its leadership queue); default: the function's
            name.
        tz: the time zone ``cron`` is read in (a zoneinfo name or tzinfo); default UTC.

    Raises:
        ConfigurationError: neither or both of ``every`` and ``cron``; an interval
            under a second; an invalid cron expression or time zone; a function that
            is not async or needs arguments.
    """

    func: ScheduleFunc
    every: timedelta | None = None
    """The interval; seconds given are made a timedelta."""
    cron: str | None = None
    name: str = ""
    tz: tzinfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def __post_init__(self) -> None:
        if not inspect.iscoroutinefunction(self.func):
            raise ConfigurationError(f"schedule {self.func!r} must be an async function")
        required = [
            p
            for p in inspect.signature(self.func).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise ConfigurationError(
                f"schedule {self.func.__qualname__} takes no payload, but needs "
                f"{required[0].name!r}"
            )
        if (self.every is None) == (self.cron is None):
            raise ConfigurationError("a schedule takes exactly one of every= and cron=")
        every: Any = self.every  # seconds are accepted too
        if every is not None and not isinstance(every, timedelta):
            if isinstance(every, bool) or not isinstance(every, int | float):
                raise ConfigurationError(f"schedule every= takes a timedelta, got {every!r}")
            every = timedelta(seconds=every)
            object.__setattr__(self, "every", every)
        if every is not None and not every.total_seconds() >= 1:
            raise ConfigurationError(f"schedule every= must be at least a second, got {every}")
        zone = _zone(self.tz)
        object.__setattr__(self, "tz", zone)
        if self.cron is not None:
            if not isinstance(self.cron, str):
                raise ConfigurationError(f"schedule cron= takes a string, got {self.cron!r}")
            _check_cron(self.cron, zone)
        if not self.name:
            object.__setattr__(self, "name", self.func.__name__)

    def describe(self) -> str:
        """``every 0:05:00`` or ``cron */5 * * * * (Europe/Paris)``."""
        if self.every is not None:
            return f"every {self.every}"
        return f"cron {self.cron} ({self.tz})"

    def next_after(self, when: float) -> float:
        """The first tick strictly after ``when`` (epoch seconds)."""
        if self.every is not None:
            step = self.every.total_seconds()
            return (math.floor(when / step) + 1) * step
        from cronsim import CronSim

        assert self.cron is not None
        return next(CronSim(self.cron, datetime.fromtimestamp(when, self.tz))).timestamp()

    def latest_at(self, when: float) -> float:
        """The last tick at or before ``when`` (epoch seconds)."""
        if self.every is not None:
            step = self.every.total_seconds()
            return math.floor(when / step) * step
        from cronsim import CronSim

        assert self.cron is not None
        start = datetime.fromtimestamp(math.floor(when) + 1, self.tz)
        for tick in CronSim(self.cron, start, reverse=True):
            if tick.timestamp() <= when:
                return tick.timestamp()
        raise AssertionError("unreachable: a cron iterator does not end")  # pragma: no cover
