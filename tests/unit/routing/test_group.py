"""A consumer group on a super stream, on the memory transport: shares, rebalance, order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from burrowmq import App, ConfigurationError, Message, Router
from burrowmq.memory.transport import MemoryTransport
from burrowmq.routing.group import ConsumerGroup
from burrowmq.testing import TestClient

pytestmark = pytest.mark.timeout(60)

STREAM, CONSUMER, PARTITIONS = "orders", "billing", 4


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``check()`` holds (the group balances on its own clock: polled)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - a condition on several objects, no one event
            await asyncio.sleep(0.05)


def _app(label: str, seen: list[tuple[str, str, int]]) -> App:
    router = Router()

    @router.stream(STREAM, consumer=CONSUMER, partitions=PARTITIONS, offset="first")
    async def bill(body: dict[str, int | str], message: Message) -> None:
        seen.append((label, str(body["key"]), int(body["n"])))

    return App(router, name="billing")


def _group(app: App) -> ConsumerGroup:
    (group,) = [c for c in app._consumers if isinstance(c, ConsumerGroup)]
    return group


class TestConsumerGroup:
    """Instances of one consumer share a super stream's partitions, each read by one."""

    async def test_share_rebalance_and_order(self) -> None:
        """Two instances split 4 partitions 2/2; when one stops the other reads all, in key order."""
        seen: list[tuple[str, str, int]] = []
        async with TestClient(_app("a", seen)) as client:
            second = _app("b", seen).replace(transport=MemoryTransport(url=client.url))
            await second.start()
            a, b = _group(client.app), _group(second)
            try:
                await _until(lambda: len(a.reading) == 2 and len(b.reading) == 2)
                assert set(a.reading).isdisjoint(b.reading)
                keys = [f"k{i}" for i in range(8)]
                for n in range(40):
                    key = keys[n % len(keys)]
                    await client.publish(STREAM, {"key": key, "n": n}, partition_key=key)
                await _until(lambda: len(seen) == 40)
                await second.stop()  # its partitions pass to a after their marks
                await _until(lambda: len(a.reading) == PARTITIONS)
                for n in range(40, 80):
                    key = keys[n % len(keys)]
                    await client.publish(STREAM, {"key": key, "n": n}, partition_key=key)
                await _until(lambda: len(seen) == 80)
            finally:
                await second.stop()
        assert sorted(n for _, _, n in seen) == list(range(80))  # nothing lost, none twice
        for key in {k for _, k, _ in seen}:
            numbers = [n for _, k, n in seen if k == key]
            assert numbers == sorted(numbers), f"key {key} out of order"
        assert {label for label, _, _ in seen[:40]} == {"a", "b"}

    def test_partitions_need_a_consumer(self) -> None:
        """partitions= without consumer= is a ConfigurationError."""
        router = Router()
        with pytest.raises(ConfigurationError, match="consumer group"):

            @router.stream(STREAM, partitions=3)
            async def bill(body: dict[str, int]) -> None: ...
