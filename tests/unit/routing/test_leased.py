"""The lease of a named stream consumer on the memory transport: one reader, failover."""

from __future__ import annotations

import asyncio

import pytest

from burrowmq import App, Message, Router
from burrowmq.memory.transport import MemoryTransport
from burrowmq.testing import TestClient

pytestmark = pytest.mark.timeout(30)

STREAM, CONSUMER = "events", "proj"
LEASE = f"{STREAM}.{CONSUMER}.lease"


class _Seen:
    def __init__(self) -> None:
        self.items: list[tuple[str, int | None]] = []
        self._changed = asyncio.Event()

    def add(self, item: tuple[str, int | None]) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, count: int) -> list[tuple[str, int | None]]:
        async with asyncio.timeout(10):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


def _app(label: str, seen: _Seen) -> App:
    router = Router()

    @router.stream(STREAM, consumer=CONSUMER, offset="first")
    async def project(body: dict[str, int], message: Message) -> None:
        seen.add((label, message.offset))

    return App(router, name="svc")


class TestLeasedStream:
    """Two Apps on one memory broker share a named stream consumer through its lease."""

    async def test_losing_the_lease_stops_the_reader_and_the_other_resumes(self) -> None:
        """When the reader's lease channel closes it reads no more; the standby reads on, nothing skipped."""
        seen = _Seen()
        async with TestClient(_app("a", seen)) as client:
            second = _app("b", seen).replace(transport=MemoryTransport(url=client.url))
            await second.start()
            try:
                for n in range(5):
                    await client.publish("", {"n": n}, routing_key=STREAM)
                assert [who for who, _ in await seen.wait(5)] == ["a"] * 5
                line = client.broker.queues[LEASE].consumers
                assert len(line) == 2  # both stand in line; the first holds the token
                client.broker.channel_error(line[0].channel, "closed by the test")
                lost_at = len(seen.items)
                for n in range(5, 10):
                    await client.publish("", {"n": n}, routing_key=STREAM)
                got = await seen.wait(10)
                await asyncio.sleep(0.5)  # two reader polls: a stray read by "a" would show
            finally:
                await second.stop()
        # At least once: b starts after the mark a stored last, so it may repeat a few.
        assert {offset for _, offset in got} == set(range(10))
        assert {who for who, _ in got[lost_at:]} == {"b"}

    async def test_a_standby_is_healthy_and_reads_nothing(self) -> None:
        """The instance in line does not read and reports ready."""
        seen = _Seen()
        async with TestClient(_app("a", seen)) as client:
            second = _app("b", seen).replace(transport=MemoryTransport(url=client.url))
            await second.start()
            try:
                for n in range(3):
                    await client.publish("", {"n": n}, routing_key=STREAM)
                await seen.wait(3)
                health = second.health()
                assert health.ready, health.problems
            finally:
                await second.stop()
        assert [who for who, _ in seen.items] == ["a", "a", "a"]
