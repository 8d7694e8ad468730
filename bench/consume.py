"""Consume: drain a prefilled durable queue, validating a pydantic model per message.

raw: hand-written aio-pika, prefetch 256, ``await message.ack()`` per message.
burrowmq: ``router.consume(queue, prefetch=256)`` with the same model.
"""

from __future__ import annotations

import asyncio

import aio_pika

from bench._common import URL, Order, Timer, delete_queues, prefill, unique

COUNT = 20_000
PREFETCH = 256


async def run_raw(queue: str, count: int) -> Timer:
    """Drain ``queue`` with hand-written aio-pika; return the timer."""
    done = asyncio.Event()
    seen = 0
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        q = await channel.declare_queue(queue, passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            Order.model_validate_json(message.body)
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        with Timer() as timer:
            tag = await q.consume(on_message)
            await done.wait()
        await q.cancel(tag)
    return timer


async def run_burrowmq(queue: str, count: int, concurrency: int = 16) -> Timer:
    """Drain ``queue`` with a burrowmq consumer; return the timer."""
    from burrowmq import App, Router

    done = asyncio.Event()
    seen = 0
    router = Router()

    @router.consume(queue, prefetch=PREFETCH, concurrency=concurrency, dead_letter=False)
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    app = App([router], url=URL, name="bench")
    with Timer() as timer:
        await app.start()
        await done.wait()
    await app.stop()
    return timer


async def one_round(
    count: int = COUNT, *, ours_first: bool = False
) -> tuple[float, float, float, float]:
    """One raw and one burrowmq drain of fresh queues; messages/s and CPU µs/message."""
    q_raw, q_ours = unique("consume.raw"), unique("consume.ours")
    await prefill(q_raw, count)
    await prefill(q_ours, count)
    try:
        if ours_first:
            ours = await run_burrowmq(q_ours, count)
            raw = await run_raw(q_raw, count)
        else:
            raw = await run_raw(q_raw, count)
            ours = await run_burrowmq(q_ours, count)
    finally:
        await delete_queues(q_raw, q_ours)
    return count / ours.wall, count / raw.wall, ours.cpu / count * 1e6, raw.cpu / count * 1e6


if __name__ == "__main__":
    print(asyncio.run(one_round()))
