"""Publish: persistent messages with confirms, one awaited at a time and as a batch.

raw: hand-written aio-pika (``await exchange.publish(Message(...))``; for the batch, a
semaphore of 256 with ``asyncio.gather``). burrowmq: ``app.publish`` and
``app.publish_many(window=256)``. Both validate nothing; both send the same model as JSON.
"""

from __future__ import annotations

import asyncio

import aio_pika

from bench._common import URL, Order, Timer, delete_queues, unique

COUNT = 10_000
WINDOW = 256


def _orders(count: int) -> list[Order]:
    return [
        Order(order_id=f"o-{n}", customer="c", total=n * 0.5, items=["a"]) for n in range(count)
    ]


async def _declare(queue: str) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "classic"})


async def run_raw(queue: str, count: int, *, batch: bool) -> Timer:
    """Publish ``count`` messages with hand-written aio-pika; return the timer."""
    orders = _orders(count)
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange

        def message(order: Order) -> aio_pika.Message:
            return aio_pika.Message(
                order.model_dump_json().encode(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            )

        with Timer() as timer:
            if batch:
                semaphore = asyncio.Semaphore(WINDOW)

                async def one(order: Order) -> None:
                    async with semaphore:
                        await exchange.publish(message(order), routing_key=queue)

                await asyncio.gather(*(one(o) for o in orders))
            else:
                for order in orders:
                    await exchange.publish(message(order), routing_key=queue)
    return timer


async def run_burrowmq(queue: str, count: int, *, batch: bool) -> Timer:
    """Publish ``count`` messages with burrowmq; return the timer."""
    from burrowmq import App

    orders = _orders(count)
    app = App(url=URL, name="bench")
    await app.start()
    try:
        with Timer() as timer:
            if batch:
                await app.publish_many("", orders, routing_key=queue, window=WINDOW)
            else:
                for order in orders:
                    await app.publish("", order, routing_key=queue)
    finally:
        await app.stop()
    return timer


async def one_round(
    *, batch: bool, count: int = COUNT, ours_first: bool = False
) -> tuple[float, float, float, float]:
    """One raw and one burrowmq run on fresh queues: messages/s and CPU µs per message."""
    q_raw, q_ours = unique("publish.raw"), unique("publish.ours")
    await _declare(q_raw)
    await _declare(q_ours)
    try:
        if ours_first:
            ours = await run_burrowmq(q_ours, count, batch=batch)
            raw = await run_raw(q_raw, count, batch=batch)
        else:
            raw = await run_raw(q_raw, count, batch=batch)
            ours = await run_burrowmq(q_ours, count, batch=batch)
    finally:
        await delete_queues(q_raw, q_ours)
    return count / ours.wall, count / raw.wall, ours.cpu / count * 1e6, raw.cpu / count * 1e6
