"""Retries and dead-lettering on a private node: attempts, exhaustion, long waits."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from burrowmq import Message, Retry, Router
from tests.faults.workload import drain, queue_depth, wait_for

pytestmark = pytest.mark.faults


class Job(BaseModel):
    n: int


class TestRetries:
    @pytest.mark.timeout(60)
    async def test_failing_twice_then_succeeding_is_handled_once(
        self, make_app, names, amqp
    ) -> None:
        """A handler failing twice then succeeding sees attempts 1, 2, 3 and completes once."""
        queue, exchange = names.queue(), names.exchange()
        attempts: list[int] = []
        done: list[int] = []
        router = Router()

        @router.direct(exchange, "job", queue=queue, retry=Retry(attempts=3, wait=0.05))
        async def flaky(job: Job, message: Message) -> None:
            attempts.append(message.attempt)
            if message.attempt < 3:
                raise RuntimeError(f"transient failure {message.attempt}")
            done.append(job.n)

        async with make_app(router) as app:
            await app.publish(exchange, Job(n=1), routing_key="job")
            await wait_for(lambda: bool(done), 15, "the third attempt")
            await asyncio.sleep(0.3)  # room for a wrong extra delivery to show up
        assert attempts == [1, 2, 3]
        assert done == [1]
        assert await queue_depth(amqp, queue) == 0
        assert await queue_depth(amqp, f"{queue}.dlq") == 0
        print(f"\n[retries] attempts seen {attempts}, handled {len(done)} time(s)")

    @pytest.mark.timeout(60)
    async def test_always_failing_is_dead_lettered_after_exactly_n_attempts(
        self, make_app, names, amqp
    ) -> None:
        """A handler that always fails is tried exactly N times, then its message is in the DLQ with our headers."""
        queue, exchange = names.queue(), names.exchange()
        attempts: list[int] = []
        router = Router()

        @router.direct(exchange, "job.bad", queue=queue, retry=Retry(attempts=4, wait=0.02))
        async def broken(job: Job, message: Message) -> None:
            attempts.append(message.attempt)
            raise ValueError(f"cannot process job {job.n}")

        async with make_app(router) as app:
            message_id = await app.publish(
                exchange, Job(n=7), routing_key="job.bad", headers={"tenant": "acme"}
            )
            await wait_for(lambda: len(attempts) >= 4, 15, "four attempts")
            for _ in range(200):
                if await queue_depth(amqp, f"{queue}.dlq"):
                    break
                await asyncio.sleep(0.05)
        dead = await drain(amqp, f"{queue}.dlq")
        assert attempts == [1, 2, 3, 4]
        assert len(dead) == 1
        headers = dead[0].headers
        assert dead[0].message_id == message_id
        assert dead[0].body == Job(n=7).model_dump_json().encode()
        assert headers["x-exception-type"] == "ValueError"
        assert headers["x-exception-message"] == "cannot process job 7"
        assert headers["x-original-exchange"] == exchange
        assert headers["x-original-routing-key"] == "job.bad"
        assert headers["x-original-queue"] == queue
        assert headers["x-retry-count"] == 3
        assert headers["tenant"] == "acme"
        assert await queue_depth(amqp, queue) == 0
        print(
            f"\n[retries] attempts {attempts}; DLQ headers: "
            + ", ".join(f"{k}={headers[k]!r}" for k in sorted(headers) if k.startswith("x-"))
        )

    @pytest.mark.timeout(60)
    async def test_long_wait_between_attempts_frees_the_prefetch_slot(
        self, make_app, names, amqp
    ) -> None:
        """With prefetch=1, a message waiting 5 s for its retry does not stop another from being handled."""
        queue, exchange = names.queue(), names.exchange()
        names.add_queue(f"{queue}.retry.5000")
        seen: list[tuple[str, int, float]] = []
        router = Router()

        @router.direct(
            exchange,
            "job",
            queue=queue,
            retry=Retry(attempts=2, wait=5.0),
            prefetch=1,
            concurrency=1,
        )
        async def slow_retry(job: Job, message: Message) -> None:
            seen.append(("A" if job.n == 1 else "B", message.attempt, time.monotonic()))
            if job.n == 1 and message.attempt == 1:
                raise RuntimeError("try again in 5 s")

        async with make_app(router) as app:
            await app.publish(exchange, Job(n=1), routing_key="job")
            await wait_for(lambda: len(seen) >= 1, 10, "the first attempt of A")
            await app.publish(exchange, Job(n=2), routing_key="job")
            await wait_for(lambda: len(seen) >= 3, 20, "B and A's second attempt")
        order = [(who, attempt) for who, attempt, _ in seen]
        assert order == [("A", 1), ("B", 1), ("A", 2)]
        first_a, b, second_a = (t for _, _, t in seen)
        assert b - first_a < 2.0, "B waited for A's retry: the slot was held"
        assert second_a - first_a >= 4.9
        assert await queue_depth(amqp, f"{queue}.dlq") == 0
        print(
            f"\n[retries] prefetch=1: B handled {b - first_a:.2f}s after A failed; "
            f"A retried after {second_a - first_a:.2f}s (through {queue}.retry.5000)"
        )
