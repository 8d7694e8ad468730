"""Poison messages: bad payloads and the broker's delivery limit end in the DLQ, the consumer goes on."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import aio_pika
import pytest
from pydantic import BaseModel

from burrowmq import Retry, Router
from tests.faults.workload import Tally, drain, publish_all, queue_depth, wait_for

pytestmark = pytest.mark.faults


class Order(BaseModel):
    order_id: int
    total: float


def _poison(n: int) -> tuple[str, bytes]:
    """One of three kinds of poison, chosen by ``n``."""
    kind = n % 3
    if kind == 0:
        return "garbage", bytes(random.Random(n).randrange(256) for _ in range(32))
    if kind == 1:
        return "invalid-json", b'{"order_id": ' + str(n).encode() + b", "
    return "wrong-schema", b'{"order": "' + str(n).encode() + b'", "total": "a lot"}'


class TestPoisonMessages:
    @pytest.mark.timeout(180)
    async def test_poison_mixed_into_good_messages_all_end_in_the_dlq(
        self, make_app, names, amqp
    ) -> None:
        """1,000 poison messages among 10,000 good ones: every poison one is dead-lettered with its reason, every good one handled."""
        good_total, poison_total = 10_000, 1_000
        queue = names.queue("orders")
        tally = Tally(expect=good_total)
        router = Router()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=1))
        async def take(order: Order) -> None:
            tally.add(order.order_id)

        keys = list(range(good_total + poison_total))
        random.Random(4).shuffle(keys)
        kinds: dict[int, str] = {}

        def body(key: int) -> bytes:
            if key < good_total:
                return Order(order_id=key, total=key / 100).model_dump_json().encode()
            kind, data = _poison(key)
            kinds[key] = kind
            return data

        started = time.monotonic()
        async with make_app(router, name="poison") as app:
            report = await publish_all(app, keys, body, routing_key=queue, concurrency=64)
            await asyncio.wait_for(tally.event.wait(), 120)
            await wait_for(lambda: tally.unique >= good_total, 5, "every good message")
            dead_count = 0
            for _ in range(200):
                dead_count = await queue_depth(amqp, f"{queue}.dlq")
                if dead_count >= poison_total:
                    break
                await asyncio.sleep(0.1)
            # The consumer is still there: one more good message goes through.
            await app.publish("", Order(order_id=-1, total=1), routing_key=queue)
            await wait_for(lambda: -1 in tally.seen, 15, "a message after the poison")
        elapsed = time.monotonic() - started
        dead = await drain(amqp, f"{queue}.dlq")
        ids = {int(m.message_id[1:]) for m in dead if m.message_id}
        reasons = Counter(
            (kinds[int(m.message_id[1:])], m.headers["x-exception-type"]) for m in dead
        )
        print(
            f"\n[poison] published {len(report.confirmed)} ({good_total} good, {poison_total} "
            f"poison) in {report.seconds:.1f}s; good handled {tally.unique - 1} "
            f"(duplicates {tally.duplicates}); DLQ {len(dead)}: {dict(reasons)}; "
            f"left in queue {await queue_depth(amqp, queue)}; {elapsed:.1f}s"
        )
        print(
            "[poison] sample reasons: "
            + " | ".join(sorted({str(m.headers["x-exception-message"])[:90] for m in dead[:9]}))
        )
        assert set(tally.seen) == {*range(good_total), -1}
        assert ids == set(range(good_total, good_total + poison_total))
        assert len(dead) == poison_total
        for message in dead:
            assert message.headers["x-exception-type"] == "DecodeError"
            assert message.headers["x-exception-message"]
            assert message.headers["x-original-queue"] == queue
            assert message.headers["x-retry-count"] == 0
        assert await queue_depth(amqp, queue) == 0

    @pytest.mark.timeout(60)
    async def test_broker_delivery_limit_dead_letters_to_our_dlx(
        self, make_app, names, amqp, node_url
    ) -> None:
        """A message returned more often than the queue's x-delivery-limit is dead-lettered by the broker into our DLQ, not dropped."""
        queue = names.queue("limited")
        router = Router()

        @router.consume(queue, queue_options={"arguments": {"x-delivery-limit": 2}})
        async def never_called(order: Order) -> None:  # pragma: no cover - not consumed
            raise AssertionError("the app only declares the queue here")

        app = make_app(router, name="declarer")
        await app.start()
        await app.stop()  # the queue, its DLX and DLQ stay (durable)
        connection = await aio_pika.connect(node_url)
        returns = 0
        try:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(b'{"order_id": 1, "total": 2}', message_id="limited-1"),
                routing_key=queue,
            )
            source = await channel.declare_queue(queue, passive=True)
            for _ in range(10):  # a consumer that fails without settling, over and over
                message = await source.get(fail=False, no_ack=False, timeout=5)
                if message is None:
                    break
                await message.reject(requeue=True)
                returns += 1
        finally:
            await connection.close()
        for _ in range(100):
            if await queue_depth(amqp, f"{queue}.dlq"):
                break
            await asyncio.sleep(0.05)
        dead = await drain(amqp, f"{queue}.dlq")
        print(
            f"\n[delivery-limit] x-delivery-limit=2: returned {returns} times, then the broker "
            f"dead-lettered it to {queue}.dlq ({len(dead)} message)"
        )
        assert returns == 3
        assert [m.message_id for m in dead] == ["limited-1"]
        assert await queue_depth(amqp, queue) == 0
