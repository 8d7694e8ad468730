"""Contract: retries, dead-lettering, requeue at shutdown, prefetch and concurrency.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio

import pytest

from burrowmq import HandlerTimeout, Message, Reject, Retry, Router
from tests.contract.conftest import Backend
from tests.contract.test_routing import Seen

pytestmark = pytest.mark.contract


class TestRetriesAndDeadLetters:
    """Failures are retried, then dead-lettered with burrowmq's x-* headers."""

    async def test_retry_then_success(self, backend: Backend) -> None:
        """A handler failing once succeeds on attempt 2; nothing is dead-lettered."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=3))
        async def flaky(body: str, message: Message) -> None:
            seen.add(message.attempt)
            if message.attempt == 1:
                raise ConnectionError("try again")

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "m", routing_key="k")
        assert await seen.wait(2) == [1, 2]

    async def test_exhausted_retries_dead_letter_with_headers(self, backend: Backend) -> None:
        """After the last attempt the message goes to <queue>.dlq with the x-exception-* headers."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router = Router()

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=2))
        async def broken(body: str) -> None:
            raise ValueError("bad input")

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "payload", routing_key="k")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        headers = dead.properties.headers
        assert dead.body == b"payload"
        assert headers["x-exception-type"] == "ValueError"
        assert headers["x-exception-message"] == "bad input"
        assert headers["x-original-exchange"] == exchange
        assert headers["x-original-routing-key"] == "k"
        assert headers["x-retry-count"] == 1

    async def test_reject_dead_letters_at_once(self, backend: Backend) -> None:
        """Reject skips the retries: one attempt, then the dead-letter queue."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=5))
        async def refuse(body: str, message: Message) -> None:
            seen.add(message.attempt)
            raise Reject("not for us")

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "m", routing_key="k")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert dead.properties.headers["x-exception-message"] == "not for us"
        assert dead.properties.headers["x-retry-count"] == 0
        assert seen.items == [1]

    @pytest.mark.own_vhost
    async def test_retry_through_broker_delay_queue(self, backend: Backend) -> None:
        """A long wait parks the message in a TTL queue that dead-letters it back for attempt 2."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        backend.names.add_queue(f"{queue}.retry.200")
        router, seen = Router(), Seen()
        retry = Retry(attempts=2, wait=0.2, broker_delay_threshold=0.1)

        @router.direct(exchange, "k", queue=queue, retry=retry)
        async def slow(body: str, message: Message) -> None:
            seen.add((message.attempt, message.routing_key, message.headers.get("x-retry-count")))
            if message.attempt == 1:
                raise TimeoutError("later")

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "m", routing_key="k")
        assert await seen.wait(2) == [(1, "k", None), (2, "k", 1)]


class TestHandlerTimeout:
    """A handler past its route's timeout is cancelled; the attempt counts as failed."""

    async def test_timed_out_attempts_are_retried_then_dead_lettered(
        self, backend: Backend
    ) -> None:
        """Each attempt past timeout= is cancelled; the last is dead-lettered as HandlerTimeout."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, started, cancelled = Router(), Seen(), Seen()

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=2), timeout=0.2)
        async def stuck(body: str, message: Message) -> None:
            started.add(message.attempt)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.add(message.attempt)
                raise

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "m", routing_key="k")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        headers = dead.properties.headers
        assert headers["x-exception-type"] == HandlerTimeout.__name__
        assert "timeout of 0.2s" in headers["x-exception-message"]
        assert f"{__name__}." in headers["x-exception-message"]  # names the handler
        assert headers["x-retry-count"] == 1
        assert started.items == [1, 2]
        assert cancelled.items == [1, 2]

    async def test_a_timed_out_attempt_may_succeed_on_retry(self, backend: Backend) -> None:
        """A retry that finishes within the timeout is acked; nothing is dead-lettered."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=2), timeout=0.2)
        async def slow_once(body: str, message: Message) -> None:
            if message.attempt == 1:
                await asyncio.sleep(5)
            seen.add(message.attempt)

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "m", routing_key="k")
        assert await seen.wait(1) == [2]
        await app.stop()
        assert await backend.transport.message_count(f"{queue}.dlq") == 0

    async def test_own_timeout_error_is_not_a_handler_timeout(self, backend: Backend) -> None:
        """A TimeoutError the handler raises within its limit is dead-lettered as itself."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router = Router()

        @router.topic(exchange, "k", queue=queue, retry=Retry(attempts=1), timeout=30)
        async def gives_up(body: str) -> None:
            raise TimeoutError("upstream too slow")

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "m", routing_key="k")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert dead.properties.headers["x-exception-type"] == "TimeoutError"


class TestAcknowledgement:
    """Unfinished work goes back to the queue; prefetch and concurrency bound the work."""

    async def test_unfinished_message_is_redelivered_to_the_next_app(
        self, backend: Backend
    ) -> None:
        """A handler cut off at shutdown leaves the message unacked; the next app gets it redelivered."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        started, seen = asyncio.Event(), Seen()
        router = Router()

        @router.direct(exchange, "k", queue=queue)
        async def stuck(body: str, message: Message) -> None:
            if not message.redelivered:
                started.set()
                await asyncio.Event().wait()  # never finishes; cancelled at shutdown
            seen.add(message.redelivered)

        first = backend.app(router, shutdown_timeout=0.2)
        await first.start()
        await first.publish(exchange, "m", routing_key="k")
        async with asyncio.timeout(10):
            await started.wait()
        await first.stop()
        second = backend.app(router)
        await second.start()
        assert await seen.wait(1) == [True]

    async def test_concurrency_bounds_handlers_in_flight(self, backend: Backend) -> None:
        """With concurrency=2, at most two handlers run at once; all messages get handled."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        release, two_running, seen = asyncio.Event(), asyncio.Event(), Seen()
        running = [0, 0]  # now, most
        router = Router()

        @router.direct(exchange, "k", queue=queue, concurrency=2, prefetch=2)
        async def work(body: int) -> None:
            running[0] += 1
            running[1] = max(running)
            if running[0] == 2:
                two_running.set()
            await release.wait()
            running[0] -= 1
            seen.add(body)

        app = backend.app(router)
        await app.start()
        for n in range(6):
            await app.publish(exchange, n, routing_key="k")
        async with asyncio.timeout(10):
            await two_running.wait()
        await asyncio.sleep(0.1)  # room for a third handler to start, if it wrongly could
        assert running == [2, 2]
        release.set()
        assert sorted(await seen.wait(6)) == list(range(6))
        assert running[1] == 2
