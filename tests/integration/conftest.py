"""Fixtures for tests against the real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aio_pika
import pytest

from burrowmq import App
from tests.conftest import Names, app_factory, raw_channel
from tests.workers import BurrowmqProcess, recorded, start_worker


@pytest.fixture
async def make_app(broker_url: str, names: Names) -> AsyncIterator[Callable[..., App]]:
    """Build Apps on the real broker; every one is stopped when the test ends.

    It asks for ``names`` so that the apps stop before the test's queues are deleted
    (a running consumer would re-declare a queue deleted under it).
    """
    async with app_factory(broker_url) as factory:
        yield factory


@pytest.fixture
async def amqp(broker_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A raw aio-pika channel, to look at the broker independently of burrowmq."""
    async with raw_channel(broker_url) as channel:
        yield channel


async def queue_depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    """Messages ready in a queue, read with a passive declare."""
    queue = await channel.declare_queue(name, passive=True)
    count = queue.declaration_result.message_count
    return int(count or 0)


async def drain(
    channel: aio_pika.abc.AbstractChannel, name: str, *, limit: int = 100_000
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (and ack) every message currently in a queue."""
    queue = await channel.declare_queue(name, passive=True)
    out = []
    while len(out) < limit:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            break
        out.append(message)
    return out


async def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds, failing the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


def start_stream_worker(url: str, stream: str, consumer: str, record: Path) -> BurrowmqProcess:
    """``tests/integration/stream_worker.py`` in a child process: consumes ``stream`` as the
    named ``consumer``, appending each offset it handles to ``record`` (its log beside it)."""
    return start_worker(
        "tests.integration.stream_worker:app",
        url,
        record.with_suffix(".log"),
        BURROWMQ_STREAM=stream,
        BURROWMQ_STREAM_CONSUMER=consumer,
        BURROWMQ_STREAM_RECORD=str(record),
    )


def offsets(record: Path) -> list[int]:
    """The offsets a stream worker recorded so far, in the order it handled them."""
    return [int(line) for line in recorded(record)]
