"""The delay ladder: its keys and topology, and delays on the memory transport's fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from burrowmq import App, ConfigurationError, Message, Retry, Router
from burrowmq.framework.matching import route
from burrowmq.memory.broker import MemoryBroker
from burrowmq.routing.delay import (
    DELIVER_EXCHANGE,
    LEVELS,
    MAX_DELAY,
    OUTBOX,
    delay_seconds,
    delivery_binding,
    entry,
    ladder_topology,
    level_name,
    routable,
)
from burrowmq.testing import FakeClock, MemoryTransport, TestClient
from burrowmq.topology.apply import declare_topology
from burrowmq.topology.model import Queue

pytestmark = pytest.mark.timeout(30)


class TestKeys:
    """A routing key spells the delay in binary, highest level first, then the queue."""

    def test_entry_of_a_delay(self) -> None:
        """65 s enters level 6 with bits 6 and 0 set."""
        exchange, key = entry(65, "work")
        assert exchange == level_name(6)
        bits = key.split(".")[:LEVELS]
        assert [LEVELS - 1 - i for i, b in enumerate(bits) if b == "1"] == [6, 0]
        assert key.endswith(".work")

    def test_zero_goes_straight_to_delivery(self) -> None:
        """No delay: the delivery exchange at once."""
        assert entry(0, "q")[0] == DELIVER_EXCHANGE

    @pytest.mark.parametrize(
        ("delay", "seconds"),
        [(0.4, 0), (1.5, 2), (timedelta(minutes=2), 120), (MAX_DELAY, MAX_DELAY)],
    )
    def test_delay_seconds(self, delay: float | timedelta, seconds: int) -> None:
        """Delays round to the nearest second."""
        assert delay_seconds(delay) == seconds

    @pytest.mark.parametrize("delay", [-1, float("nan"), MAX_DELAY + 1, True, "5"])
    def test_bad_delays_are_refused(self, delay: object) -> None:
        """Negative, not finite, too long or not a duration: a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            delay_seconds(delay)  # type: ignore[arg-type]

    def test_routable_names(self) -> None:
        """A queue named with a wildcard word or too long for the key takes the outbox."""
        assert routable("billing.charge")
        assert not routable("a.*.b") and not routable("x" * 250)


class TestLadderRouting:
    """The pure router agrees: a delay enters at its highest set bit and leaves by its tail."""

    @pytest.mark.parametrize("seconds", [1, 5, 7, 65, 3600, 86_400, MAX_DELAY])
    async def test_first_and_last_hop(self, seconds: int) -> None:
        """The entry exchange routes into the highest set bit's queue; the delivery one by name."""
        topology = ladder_topology()
        topology.add(Queue(name="work"))
        topology.add(delivery_binding("work"))
        transport = MemoryTransport(MemoryBroker())
        await transport.connect()
        try:
            await declare_topology(transport, topology)
            graph = transport.broker.graph()
        finally:
            await transport.close()
        exchange, key = entry(seconds, "work")
        assert route(graph, exchange, key, {}) == {level_name(seconds.bit_length() - 1)}
        assert route(graph, DELIVER_EXCHANGE, key, {}) == {"work"}
        assert route(graph, DELIVER_EXCHANGE, entry(seconds, OUTBOX)[1], {}) == {OUTBOX}


class TestFakeClock:
    """On the memory transport, delays run on a fake clock the test moves."""

    async def test_an_hour_takes_milliseconds(self) -> None:
        """A 1 h delayed publish arrives when the clock passes the hour, not a second before."""
        router = Router()
        seen: list[float] = []

        @router.consume("hour", queue_options={"type": "quorum"})
        async def receive(body: dict, message: Message) -> None:
            seen.append(clock.time())

        clock = FakeClock()
        async with TestClient(App(router), clock=clock) as client:
            start = clock.time()
            await client.publish("", {"x": 1}, routing_key="hour", delay=timedelta(hours=1))
            await client.advance(timedelta(minutes=59, seconds=59))
            assert seen == []
            await client.advance(timedelta(seconds=1))
            assert seen == [start + 3600]

    async def test_retry_wait_on_the_fake_clock(self) -> None:
        """A 10-minute retry wait comes back when the clock passes it, with attempt 2."""
        router = Router()
        attempts: list[tuple[int, float]] = []

        @router.consume("slow", retry=Retry(attempts=2, wait=600), queue_options={"type": "quorum"})
        async def flaky(body: dict, message: Message) -> None:
            attempts.append((message.attempt, clock.time()))
            if message.attempt == 1:
                raise RuntimeError("later")

        clock = FakeClock()
        async with TestClient(App(router), clock=clock) as client:
            await client.publish_and_wait("", {"x": 1}, routing_key="slow")
            assert [a for a, _ in attempts] == [1]
            await client.advance(timedelta(minutes=10))
            assert [a for a, _ in attempts] == [1, 2]
            assert attempts[1][1] - attempts[0][1] == 600


class TestTopology:
    """The ladder is in the app's topology (so in topology plan/export) when retries use it."""

    def test_broker_waits_bring_the_ladder_and_the_way_back(self) -> None:
        """A route retrying after 30 s has the 28 levels, the outbox, and its delivery binding."""
        router = Router()

        @router.consume("jobs", retry=Retry(attempts=3, wait=30), queue_options={})
        async def job(body: dict) -> None: ...

        topology = App(router).topology()
        names = {q.name for q in topology.queues}
        assert {level_name(k) for k in range(LEVELS)} | {OUTBOX} <= names
        assert delivery_binding("jobs") in topology.bindings

    def test_short_waits_bring_no_ladder(self) -> None:
        """The default policy waits in process: no ladder declared."""
        router = Router()

        @router.consume("jobs", queue_options={})
        async def job(body: dict) -> None: ...

        assert OUTBOX not in {q.name for q in App(router).topology().queues}
