"""Schedules: validation, tick arithmetic, and leadership on the memory transport's fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from burrowmq import App, ConfigurationError, Router
from burrowmq.routing.schedule import Schedule
from burrowmq.testing import FakeClock, MemoryTransport, TestClient

pytestmark = pytest.mark.timeout(30)


async def _job() -> None:
    pass


class TestValidation:
    """A bad schedule fails where it is written, as a ConfigurationError."""

    @pytest.mark.parametrize(
        "options",
        [
            {},
            {"every": timedelta(seconds=5), "cron": "* * * * *"},
            {"cron": "61 * * * *"},
            {"cron": "not cron"},
            {"every": timedelta(milliseconds=10)},
            {"cron": "* * * * *", "tz": "Mars/Olympus"},
        ],
    )
    def test_refused_at_decoration(self, options: dict) -> None:
        """Neither or both of every/cron, an invalid cron, a sub-second interval, an unknown zone."""
        router = Router()
        with pytest.raises(ConfigurationError):
            router.schedule(**options)(_job)

    def test_payload_and_sync_functions_refused(self) -> None:
        """A schedule takes an async function with no payload."""
        router = Router()

        async def needs(x: int) -> None: ...

        def sync() -> None: ...

        for func in (needs, sync):
            with pytest.raises(ConfigurationError):
                router.schedule(every=60)(func)  # type: ignore[type-var]

    def test_decorator_returns_the_function(self) -> None:
        """The function stays as it was; the schedule is named after it."""
        router = Router()
        assert router.schedule(every=timedelta(minutes=5))(_job) is _job
        assert [s.name for s in router.schedules] == ["_job"]


class TestTicks:
    """Ticks are times every instance computes alike."""

    def test_every_is_aligned_to_the_epoch(self) -> None:
        """every=5 min ticks at :00, :05, ... UTC."""
        schedule = Schedule(_job, every=timedelta(minutes=5))
        t = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC).timestamp()
        assert schedule.next_after(t) == datetime(2026, 3, 1, 12, 10, tzinfo=UTC).timestamp()
        assert schedule.latest_at(t) == datetime(2026, 3, 1, 12, 5, tzinfo=UTC).timestamp()

    def test_cron_in_its_time_zone(self) -> None:
        """cron="0 9 * * *" in Europe/Paris is 08:00 UTC in winter and 07:00 UTC in summer."""
        schedule = Schedule(_job, cron="0 9 * * *", tz="Europe/Paris")
        winter = datetime(2026, 1, 10, 0, 0, tzinfo=UTC).timestamp()
        summer = datetime(2026, 7, 10, 0, 0, tzinfo=UTC).timestamp()
        assert schedule.next_after(winter) == datetime(2026, 1, 10, 8, tzinfo=UTC).timestamp()
        assert schedule.next_after(summer) == datetime(2026, 7, 10, 7, tzinfo=UTC).timestamp()
        at_nine = datetime(2026, 1, 10, 8, tzinfo=UTC).timestamp()
        assert schedule.latest_at(at_nine) == at_nine


class TestOnTheFakeClock:
    """On the memory transport a schedule runs on the fake clock, on one app at a time."""

    async def test_an_hour_of_five_minute_ticks(self) -> None:
        """Over an hour, every=5 min ticks 12 times, each at its tick time."""
        router = Router()
        ran: list[float] = []

        @router.schedule(every=timedelta(minutes=5))
        async def sweep() -> None:
            ran.append(clock.time())

        clock = FakeClock(datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC))
        async with TestClient(App(router), clock=clock) as client:
            await client.advance(timedelta(hours=1))
        start = datetime(2026, 3, 1, 12, 5, tzinfo=UTC).timestamp()
        assert ran == [start + 300 * i for i in range(12)]

    async def test_one_leader_and_a_takeover_that_coalesces(self) -> None:
        """Two apps on one broker: one runs each tick; when it stops, the other runs the missed tick once."""
        ran: list[tuple[str, float]] = []

        def app(label: str) -> App:
            router = Router()

            @router.schedule(every=60, name="tick")
            async def tick() -> None:
                ran.append((label, clock.time()))

            return App(router, name="svc")

        clock = FakeClock(datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC))
        async with TestClient(app("a"), clock=clock) as client:
            second = app("b").replace(transport=MemoryTransport(url=client.url))
            await second.start()
            try:
                await client.advance(timedelta(minutes=3))
                assert [who for who, _ in ran] == ["a", "a", "a"]
                await client.app.stop()  # the leader leaves: b takes over
                await client.advance(timedelta(minutes=2))
            finally:
                await second.stop()
        times = [t for _, t in ran]
        assert len(times) == len(set(times)), "a tick ran twice"
        assert [who for who, _ in ran] == ["a", "a", "a", "b", "b"]
