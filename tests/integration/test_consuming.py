"""Consuming on the real broker: exactly once, failures kept, graceful shutdown, poison."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from pydantic import BaseModel

from burrowmq import Message, Retry, Router

from .conftest import drain, queue_depth, wait_for

pytestmark = pytest.mark.integration


class Order(BaseModel):
    order_id: str
    total: float


class TestThroughput:
    @pytest.mark.timeout(180)
    async def test_ten_thousand_exactly_once(self, make_app, names, amqp) -> None:
        """10,000 confirmed messages are each handled once with concurrency 16; the queue ends empty."""
        exchange = names.exchange()
        queue = names.queue("bulk")
        total = 10_000
        counts: dict[int, int] = {}
        done = asyncio.Event()
        peak = 0
        running = 0
        router = Router()

        @router.direct(exchange, "bulk", queue=queue, concurrency=16, prefetch=64)
        async def handle(body: dict[str, int]) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            counts[body["n"]] = counts.get(body["n"], 0) + 1
            running -= 1
            if len(counts) == total:
                done.set()

        app = make_app(router)
        await app.start()
        for start in range(0, total, 500):
            await asyncio.gather(
                *(
                    app.publish(exchange, {"n": n}, routing_key="bulk")
                    for n in range(start, start + 500)
                )
            )
        await asyncio.wait_for(done.wait(), 120)
        await app.stop()
        assert sorted(counts) == list(range(total))
        assert set(counts.values()) == {1}, "no message handled twice"
        assert peak > 1, "handlers ran concurrently"
        assert peak <= 16, "concurrency is bounded"
        assert await queue_depth(amqp, queue) == 0


class TestFailures:
    @pytest.mark.timeout(60)
    async def test_failing_handler_keeps_message_and_serves_others(
        self, make_app, names, amqp
    ) -> None:
        """A raising handler's message ends in the DLQ with its reason; others are still served."""
        exchange = names.exchange()
        queue = names.queue("work")
        handled: list[str] = []
        attempts: dict[str, list[int]] = {}
        router = Router()

        @router.direct(exchange, "work", queue=queue, retry=Retry(attempts=3, wait=0.01))
        async def handle(order: Order, message: Message) -> None:
            attempts.setdefault(order.order_id, []).append(message.attempt)
            if order.order_id.startswith("bad"):
                raise ValueError(f"cannot process {order.order_id}")
            handled.append(order.order_id)

        app = make_app(router)
        await app.start()
        for i in range(20):
            order_id = f"bad-{i}" if i % 5 == 0 else f"good-{i}"
            await app.publish(exchange, Order(order_id=order_id, total=i), routing_key="work")
        await wait_for(lambda: len(handled) == 16)

        async def dead_lettered() -> int:
            return await queue_depth(amqp, f"{queue}.dlq")

        for _ in range(200):
            if await dead_lettered() == 4:
                break
            await asyncio.sleep(0.05)
        await app.stop()
        letters = await drain(amqp, f"{queue}.dlq")
        assert sorted(m.headers["x-exception-message"] for m in letters) == sorted(
            f"cannot process bad-{i}" for i in (0, 5, 10, 15)
        )
        for letter in letters:
            assert letter.headers["x-exception-type"] == "ValueError"
            assert letter.headers["x-original-exchange"] == exchange
            assert letter.headers["x-original-routing-key"] == "work"
            assert letter.headers["x-retry-count"] == 2
            assert Order.model_validate_json(letter.body).order_id.startswith("bad")
        assert all(attempts[f"bad-{i}"] == [1, 2, 3] for i in (0, 5, 10, 15))
        assert await queue_depth(amqp, queue) == 0


class TestShutdown:
    @pytest.mark.timeout(90)
    async def test_stop_with_in_flight_handlers_loses_nothing(self, make_app, names) -> None:
        """Stopping with 100 handlers in flight acks what finished; the rest goes to a second app."""
        exchange = names.exchange()
        queue = names.queue("slow")
        first: list[int] = []
        started: set[int] = set()
        all_started = asyncio.Event()
        router1 = Router()

        @router1.direct(exchange, "slow", queue=queue, prefetch=100, concurrency=100)
        async def slow(body: dict[str, int]) -> None:
            started.add(body["n"])
            if len(started) == 100:
                all_started.set()
            await all_started.wait()
            # The first 50 finish within the shutdown bound; the others are cut off.
            await asyncio.sleep(0.3 if body["n"] < 50 else 60)
            first.append(body["n"])

        app1 = make_app(router1, shutdown_timeout=3.0)
        await app1.start()
        for n in range(150):
            await app1.publish(exchange, {"n": n}, routing_key="slow")
        await asyncio.wait_for(all_started.wait(), 30)
        await app1.stop()
        assert sorted(first) == list(range(50)), "in-flight handlers finished before close"

        second: list[int] = []
        redelivered: list[int] = []
        router2 = Router()

        @router2.direct(exchange, "slow", queue=queue)
        async def fast(body: dict[str, int], message: Message) -> None:
            second.append(body["n"])
            if message.redelivered:
                redelivered.append(body["n"])

        app2 = make_app(router2)
        await app2.start()
        await wait_for(lambda: len(second) >= 100)
        await asyncio.sleep(0.2)
        assert sorted(first + second) == list(range(150)), "every message handled exactly once"
        assert set(redelivered) >= set(range(50, 100)), "cut-off handlers' messages came back"


class TestPoison:
    @pytest.mark.timeout(60)
    async def test_bad_payloads_are_logged_and_dead_lettered(self, make_app, names, amqp) -> None:
        """Garbage bytes, invalid JSON and a model-invalid payload are each logged with the reason."""
        exchange = names.exchange()
        queue = names.queue("orders")
        handled: list[str] = []
        router = Router()

        @router.direct(exchange, "o", queue=queue)
        async def handle(order: Order) -> None:
            handled.append(order.order_id)

        app = make_app(router)
        with structlog.testing.capture_logs() as logs:
            await app.start()
            await app.publish(exchange, b"\xff\xfe\x00garbage", routing_key="o")
            await app.publish(exchange, b'{"order_id": "x", ', routing_key="o")
            await app.publish(exchange, {"order_id": "y", "total": "lots"}, routing_key="o")
            await app.publish(exchange, Order(order_id="ok", total=1), routing_key="o")
            await wait_for(lambda: handled == ["ok"])
            for _ in range(200):
                if sum(e["event"] == "message_dead_lettered" for e in logs) == 3:
                    break
                await asyncio.sleep(0.05)
            await app.stop()
        invalid = [e for e in logs if e["event"] == "payload_invalid"]
        reasons = [e["reason"] for e in invalid]
        assert len(reasons) == 3, reasons
        assert all(r.startswith("body is not valid JSON") for r in reasons[:2]), reasons
        assert "total" in reasons[2] and "valid number" in reasons[2], reasons[2]
        assert all(e["handler"].endswith(".handle") for e in invalid)
        letters = await drain(amqp, f"{queue}.dlq")
        assert len(letters) == 3
        assert {m.headers["x-exception-type"] for m in letters} == {"DecodeError"}
        assert handled == ["ok"]
