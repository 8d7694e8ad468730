"""Contract: batch handlers collect deliveries into lists and settle each message.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from burrowmq import Batch, BatchError, HandlerTimeout, Message, Reject, Retry, Router
from tests.contract.conftest import Backend
from tests.contract.test_routing import Seen

pytestmark = pytest.mark.contract


class Event(BaseModel):
    n: int


async def nothing_left(backend: Backend, queue: str) -> None:
    """Every message was acked: once the app stopped, none came back to ``queue``."""
    with pytest.raises(TimeoutError):
        await backend.take(queue, 1, timeout=1.0)


class TestBatches:
    """Deliveries are handled in lists of up to ``size``, the last after ``wait``."""

    async def test_250_messages_in_batches_of_100_100_50(self, backend: Backend) -> None:
        """250 messages make batches of 100, 100 and 50 (the last after the wait); all acked."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        @router.direct(exchange, "e", queue=queue, batch=Batch(size=100, wait=0.5))
        async def collect(events: list[Event], messages: list[Message]) -> None:
            assert [m.routing_key for m in messages] == ["e"] * len(events)
            seen.add([event.n for event in events])

        app = backend.app(router)
        await app.start()
        await app.publish_many(exchange, [Event(n=n) for n in range(250)], routing_key="e")
        batches = await seen.wait(3)
        assert [len(batch) for batch in batches] == [100, 100, 50]
        assert sorted(n for batch in batches for n in batch) == list(range(250))
        await app.stop()
        await nothing_left(backend, queue)

    async def test_failure_retries_then_dead_letters_every_message(self, backend: Backend) -> None:
        """A raising batch handler fails an attempt of each message: retried, then dead-lettered."""
        queue = backend.names.queue()
        router, seen = Router(), Seen()

        @router.consume(
            queue, queue_options={}, retry=Retry(attempts=2), batch=Batch(size=3, wait=0.2)
        )
        async def broken(events: list[Event], messages: list[Message]) -> None:
            seen.add(sorted((m.attempt, e.n) for e, m in zip(events, messages, strict=True)))
            raise ValueError("bad batch")

        app = backend.app(router)
        await app.start()
        await app.publish_many("", [Event(n=n) for n in range(3)], routing_key=queue)
        dead = await backend.take(f"{queue}.dlq", 3)
        assert await seen.wait(2) == [[(1, 0), (1, 1), (1, 2)], [(2, 0), (2, 1), (2, 2)]]
        for copy in dead:
            assert copy.properties.headers["x-exception-type"] == "ValueError"
            assert copy.properties.headers["x-exception-message"] == "bad batch"
            assert copy.properties.headers["x-retry-count"] == 1

    async def test_a_poison_message_is_dead_lettered_alone(self, backend: Backend) -> None:
        """A message that does not decode is dead-lettered alone; the rest still form the batch."""
        queue = backend.names.queue()
        router, seen = Router(), Seen()

        @router.consume(queue, queue_options={}, batch=Batch(size=5, wait=0.3))
        async def collect(events: list[Event]) -> None:
            seen.add(sorted(e.n for e in events))

        app = backend.app(router)
        await app.start()
        bodies: list[object] = [Event(n=1), Event(n=2), {"n": "poison"}, Event(n=3), Event(n=4)]
        await app.publish_many("", bodies, routing_key=queue)
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert dead.properties.headers["x-exception-type"] == "DecodeError"
        assert "n:" in dead.properties.headers["x-exception-message"]
        assert await seen.wait(1) == [[1, 2, 3, 4]]

    async def test_batch_error_fails_only_the_named_messages(self, backend: Backend) -> None:
        """BatchError({index: exc}) dead-letters those (Reject at once); the others are acked."""
        queue = backend.names.queue()
        router, seen = Router(), Seen()

        @router.consume(
            queue, queue_options={}, retry=Retry(attempts=1), batch=Batch(size=4, wait=0.3)
        )
        async def partly(events: list[Event]) -> None:
            seen.add([e.n for e in events])
            by_n = {e.n: i for i, e in enumerate(events)}
            raise BatchError({by_n[1]: Reject("one is odd"), by_n[3]: KeyError("three")})

        app = backend.app(router)
        await app.start()
        await app.publish_many("", [Event(n=n) for n in range(4)], routing_key=queue)
        dead = await backend.take(f"{queue}.dlq", 2)
        reasons = sorted(d.properties.headers["x-exception-message"] for d in dead)
        assert reasons == ["'three'", "one is odd"]
        assert len(await seen.wait(1)) == 1
        await app.stop()
        await nothing_left(backend, queue)

    async def test_timeout_bounds_the_batch_call(self, backend: Backend) -> None:
        """A batch handler past timeout= is cancelled; each message fails with HandlerTimeout."""
        queue = backend.names.queue()
        router = Router()

        @router.consume(
            queue,
            queue_options={},
            retry=Retry(attempts=1),
            timeout=0.2,
            batch=Batch(size=2, wait=0.2),
        )
        async def slow(events: list[Event]) -> None:
            await asyncio.sleep(30)

        app = backend.app(router)
        await app.start()
        await app.publish_many("", [Event(n=n) for n in range(2)], routing_key=queue)
        dead = await backend.take(f"{queue}.dlq", 2)
        assert {d.properties.headers["x-exception-type"] for d in dead} == {HandlerTimeout.__name__}
