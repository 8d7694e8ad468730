"""Unit: the memory broker's streams keep a log that each consumer reads from an offset."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from burrowmq import TopologyError
from burrowmq.framework.transport import Delivery, Properties
from burrowmq.memory.transport import MemoryTransport


async def _stream(name: str = "s", **arguments: object) -> MemoryTransport:
    transport = MemoryTransport()
    await transport.connect()
    await transport.declare_queue(name, arguments={"x-queue-type": "stream", **arguments})
    for n in range(5):
        await transport.publish("", name, str(n).encode(), Properties())
    return transport


async def _read(transport: MemoryTransport, count: int, **arguments: object) -> list[int]:
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    subscription = await transport.consume("s", got.put_nowait, prefetch=2, arguments=arguments)
    offsets = []
    async with asyncio.timeout(2):
        while len(offsets) < count:
            delivery = await got.get()
            offsets.append(delivery.properties.headers["x-stream-offset"])
            await delivery.ack()
    await subscription.close()
    return offsets


class TestMemoryStream:
    """Every consumer reads the whole log from its own offset; acks remove nothing."""

    @pytest.mark.parametrize(
        ("offset", "expected"), [("first", [0, 1, 2, 3, 4]), (3, [3, 4]), ("last", [4])]
    )
    async def test_offsets(self, offset: object, expected: list[int]) -> None:
        """first, an offset and last start where they say, twice over."""
        transport = await _stream()
        try:
            assert await _read(transport, len(expected), **{"x-stream-offset": offset}) == expected
            assert await _read(transport, len(expected), **{"x-stream-offset": offset}) == expected
        finally:
            await transport.close()

    async def test_timestamp(self) -> None:
        """A datetime starts at the first message that arrived at or after it."""
        transport = await _stream()
        try:
            moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
            assert await _read(transport, 5, **{"x-stream-offset": moment}) == [0, 1, 2, 3, 4]
        finally:
            await transport.close()

    async def test_retention_by_bytes(self) -> None:
        """x-max-length-bytes drops the oldest messages; first then starts later."""
        transport = await _stream(**{"x-max-length-bytes": 2})
        try:
            assert await _read(transport, 2, **{"x-stream-offset": "first"}) == [3, 4]
        finally:
            await transport.close()

    async def test_refusals(self) -> None:
        """A dead-letter exchange on a stream, or a consumer without prefetch, is refused."""
        transport = await _stream()
        try:
            with pytest.raises(TopologyError, match="x-dead-letter-exchange"):
                await transport.declare_queue(
                    "t", arguments={"x-queue-type": "stream", "x-dead-letter-exchange": "x"}
                )
            with pytest.raises(TopologyError, match="prefetch"):
                await transport.consume("s", lambda d: None, prefetch=0)
        finally:
            await transport.close()
