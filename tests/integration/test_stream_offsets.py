"""A named stream consumer's mark on the real broker: forged marks and a deleted offset queue.

A forged or nonsensical mark is ignored with a warning naming its queue and the consumer
starts at its route's ``offset=`` (it repeats, it never skips); an offset queue deleted
while the consumer runs is declared again at the next commit; a graceful stop always
stores the mark.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aio_pika
import pytest
import structlog

from burrowmq import App, Message, Router
from burrowmq.routing.offsets import OFFSET_QUEUE_ARGUMENTS, offset_queue
from burrowmq.topology.management import ManagementClient
from tests.conftest import Names

from .conftest import wait_for

pytestmark = pytest.mark.integration

COUNT = 10


async def _fill(channel: aio_pika.abc.AbstractChannel, stream: str, start: int, end: int) -> None:
    """Declare ``stream`` and publish ``{"n": n}`` for n in [start, end), confirmed."""
    await channel.declare_queue(stream, durable=True, arguments={"x-queue-type": "stream"})
    for n in range(start, end):
        await channel.default_exchange.publish(
            aio_pika.Message(json.dumps({"n": n}).encode()), routing_key=stream
        )


async def _forge(channel: aio_pika.abc.AbstractChannel, queue: str, body: bytes) -> None:
    """Put ``body`` in the offset queue ``queue`` as its mark."""
    await channel.declare_queue(queue, durable=True, arguments=dict(OFFSET_QUEUE_ARGUMENTS))
    await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def _stored(channel: aio_pika.abc.AbstractChannel, queue: str) -> Any:
    """The offset stored in ``queue`` (read and put back), or ``None`` when it is empty."""
    declared = await channel.declare_queue(queue, passive=True)
    message = await declared.get(fail=False)
    if message is None:
        return None
    await message.reject(requeue=True)
    return json.loads(message.body)["offset"]


async def _wait_stored(
    channel: aio_pika.abc.AbstractChannel, queue: str, value: int, timeout: float = 15.0
) -> Any:
    """Wait until ``queue`` holds the mark ``value``; return the last mark read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stored = None
    while loop.time() < deadline:
        stored = await _stored(channel, queue)
        if stored == value:
            break
        await asyncio.sleep(0.05)
    return stored


def _route(stream: str, consumer: str, seen: list[int]) -> Router:
    router = Router()

    @router.stream(stream, consumer=consumer, offset="first", prefetch=50)
    async def project(event: dict[str, int], message: Message) -> None:
        assert message.offset is not None
        seen.append(message.offset)

    return router


def _names(names: Names) -> tuple[str, str, str]:
    stream, consumer = names.queue("events"), f"{names.prefix}.proj"
    names.add_queue(f"{consumer}.dlq")
    return stream, consumer, names.add_queue(offset_queue(stream, consumer))


FORGED = {
    "not-json": b"\xff not json {",
    "not-an-int": json.dumps({"offset": "4"}).encode(),
    "a-float": json.dumps({"offset": 4.0}).encode(),
    "a-bool": json.dumps({"offset": True}).encode(),
    "negative": json.dumps({"offset": -3}).encode(),
    "beyond-the-end": json.dumps({"offset": 1_000_000}).encode(),
    "not-an-object": b"[1, 2]",
}


class TestForgedMarks:
    """A mark that cannot be right is ignored: the consumer starts at offset="first"."""

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("kind", sorted(FORGED))
    async def test_forged_mark_is_ignored_with_a_warning(
        self,
        kind: str,
        names: Names,
        amqp: aio_pika.abc.AbstractChannel,
        make_app: Callable[..., App],
    ) -> None:
        """Every message from the first is handled, and a warning names the offset queue."""
        stream, consumer, queue = _names(names)
        await _fill(amqp, stream, 0, COUNT)
        await _forge(amqp, queue, FORGED[kind])
        seen: list[int] = []
        with structlog.testing.capture_logs() as logs:
            app = make_app(_route(stream, consumer, seen))
            await app.start()
            await wait_for(lambda: len(set(seen)) >= COUNT, 30)
            await app.stop()
        assert sorted(set(seen)) == list(range(COUNT))
        ignored = [e for e in logs if e["event"] == "stream_offset_ignored"]
        assert len(ignored) == 1, logs
        assert ignored[0]["log_level"] == "warning"
        assert ignored[0]["queue"] == queue
        # The stop stored a real mark over the forged one.
        assert await _stored(amqp, queue) == COUNT - 1

    @pytest.mark.timeout(60)
    async def test_a_mark_inside_the_stream_is_kept(
        self,
        names: Names,
        amqp: aio_pika.abc.AbstractChannel,
        make_app: Callable[..., App],
    ) -> None:
        """A mark at offset 4 of 10 resumes at 5, with no warning (the check is not too eager)."""
        stream, consumer, queue = _names(names)
        await _fill(amqp, stream, 0, COUNT)
        await _forge(amqp, queue, json.dumps({"offset": 4}).encode())
        seen: list[int] = []
        with structlog.testing.capture_logs() as logs:
            app = make_app(_route(stream, consumer, seen))
            await app.start()
            await wait_for(lambda: COUNT - 1 in seen, 30)
            await app.stop()
        assert sorted(set(seen)) == list(range(5, COUNT))
        assert not [e for e in logs if e["event"] == "stream_offset_ignored"]

    @pytest.mark.timeout(60)
    async def test_the_last_offset_is_a_valid_mark(
        self,
        names: Names,
        amqp: aio_pika.abc.AbstractChannel,
        make_app: Callable[..., App],
    ) -> None:
        """A mark at the last offset is kept: only what comes after it is handled."""
        stream, consumer, queue = _names(names)
        await _fill(amqp, stream, 0, COUNT)
        await _forge(amqp, queue, json.dumps({"offset": COUNT - 1}).encode())
        seen: list[int] = []
        with structlog.testing.capture_logs() as logs:
            app = make_app(_route(stream, consumer, seen))
            await app.start()
            await _fill(amqp, stream, COUNT, COUNT + 1)
            await wait_for(lambda: COUNT in seen, 30)
            await app.stop()
        assert sorted(set(seen)) == [COUNT]
        assert not [e for e in logs if e["event"] == "stream_offset_ignored"]


class TestDeletedOffsetQueue:
    """The offset queue deleted under a running consumer comes back with the mark."""

    @pytest.mark.timeout(60)
    async def test_recreated_at_the_next_commit(
        self,
        names: Names,
        amqp: aio_pika.abc.AbstractChannel,
        management: ManagementClient,
        make_app: Callable[..., App],
    ) -> None:
        """After the delete, the next commit declares it again (warning) and stores the mark."""
        stream, consumer, queue = _names(names)
        await _fill(amqp, stream, 0, 5)
        seen: list[int] = []
        with structlog.testing.capture_logs() as logs:
            app = make_app(_route(stream, consumer, seen))
            await app.start()
            await wait_for(lambda: 4 in seen, 30)
            assert await _wait_stored(amqp, queue, 4) == 4
            await amqp.queue_delete(queue)
            await _fill(amqp, stream, 5, COUNT)
            await wait_for(lambda: COUNT - 1 in seen, 30)
            await wait_for(
                lambda: any(e["event"] == "stream_offset_queue_recreated" for e in logs), 30
            )
            recreated = [e for e in logs if e["event"] == "stream_offset_queue_recreated"]
            assert recreated[0]["queue"] == queue and recreated[0]["log_level"] == "warning"
            await app.stop()
        assert await _stored(amqp, queue) == COUNT - 1
        described = await management.queue(queue)
        assert described is not None
        assert described["arguments"] == dict(OFFSET_QUEUE_ARGUMENTS)  # one message, the newest

    @pytest.mark.timeout(60)
    async def test_graceful_stop_stores_an_unmoved_mark(
        self,
        names: Names,
        amqp: aio_pika.abc.AbstractChannel,
        make_app: Callable[..., App],
    ) -> None:
        """Deleted after the last commit, with nothing new settled: the stop stores the mark."""
        stream, consumer, queue = _names(names)
        await _fill(amqp, stream, 0, 5)
        seen: list[int] = []
        app = make_app(_route(stream, consumer, seen))
        await app.start()
        await wait_for(lambda: 4 in seen, 30)
        assert await _wait_stored(amqp, queue, 4) == 4  # the periodic commit
        await amqp.queue_delete(queue)
        await app.stop()
        assert await _stored(amqp, queue) == 4
        again: list[int] = []
        second = make_app(_route(stream, consumer, again))
        await second.start()
        await _fill(amqp, stream, 5, 6)
        await wait_for(lambda: 5 in again, 30)
        await second.stop()
        assert again == [5]
