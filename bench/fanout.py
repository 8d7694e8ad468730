"""Topic fan-out: each publish reaches 8 queues, each drained by its own handler.

raw: hand-written aio-pika, one consumer per queue (prefetch 256, ack per message).
burrowmq: eight ``@router.topic`` routes. The publisher is the same for both (raw
aio-pika with confirms), so the figure compares the consuming side.
"""

from __future__ import annotations

import asyncio

import aio_pika

from bench._common import URL, Order, Samples, Timer, delete_queues, payload, report, unique

COUNT = 2_500
QUEUES = 8
PREFETCH = 256


async def _setup(tag: str) -> tuple[str, list[str]]:
    exchange = unique(f"fanout.{tag}")
    queues = [f"{exchange}.q{i}" for i in range(QUEUES)]
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, "topic", durable=True)
        for i, name in enumerate(queues):
            q = await channel.declare_queue(
                name, durable=True, arguments={"x-queue-type": "classic"}
            )
            await q.bind(ex, "order.*.placed" if i % 2 else "order.#")
    return exchange, queues


async def _publish(exchange: str, count: int) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        ex = await channel.get_exchange(exchange)
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    ex.publish(
                        aio_pika.Message(payload(n), delivery_mode=2), routing_key="order.eu.placed"
                    )
                    for n in range(start, min(count, start + 500))
                )
            )


async def run_raw(exchange: str, queues: list[str], count: int) -> Timer:
    """Consume all queues with hand-written aio-pika while the messages are published."""
    done = asyncio.Event()
    seen = 0
    total = count * len(queues)
    connection = await aio_pika.connect(URL)
    async with connection:
        for name in queues:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            q = await channel.declare_queue(name, passive=True)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                nonlocal seen
                Order.model_validate_json(message.body)
                await message.ack()
                seen += 1
                if seen == total:
                    done.set()

            await q.consume(on_message)
        with Timer() as timer:
            await _publish(exchange, count)
            await done.wait()
    return timer


async def run_burrowmq(exchange: str, queues: list[str], count: int) -> Timer:
    """Consume all queues with eight burrowmq topic routes while the messages are published."""
    from burrowmq import App, Queue, Router

    done = asyncio.Event()
    seen = 0
    total = count * len(queues)
    router = Router()
    for i, name in enumerate(queues):

        async def handle(order: Order) -> None:
            nonlocal seen
            seen += 1
            if seen == total:
                done.set()

        handle.__name__ = f"handle{i}"
        router.topic(
            exchange,
            "order.*.placed" if i % 2 else "order.#",
            queue=Queue(name=name, arguments={"x-queue-type": "classic"}),
            prefetch=PREFETCH,
            dead_letter=False,
        )(handle)
    app = App([router], url=URL, name="bench")
    await app.start()
    try:
        with Timer() as timer:
            await _publish(exchange, count)
            await done.wait()
    finally:
        await app.stop()
    return timer


async def one_round(
    count: int = COUNT, *, ours_first: bool = False
) -> tuple[float, float, float, float]:
    """One raw and one burrowmq run: deliveries/s and CPU µs per delivery."""
    ex_raw, q_raw = await _setup("raw")
    ex_ours, q_ours = await _setup("ours")
    total = count * QUEUES
    try:
        if ours_first:
            ours = await run_burrowmq(ex_ours, q_ours, count)
            raw = await run_raw(ex_raw, q_raw, count)
        else:
            raw = await run_raw(ex_raw, q_raw, count)
            ours = await run_burrowmq(ex_ours, q_ours, count)
    finally:
        await delete_queues(*q_raw, *q_ours, exchanges=(ex_raw, ex_ours))
    return total / ours.wall, total / raw.wall, ours.cpu / total * 1e6, raw.cpu / total * 1e6


async def main(reps: int, json_path: str | None) -> None:
    """Interleave raw and burrowmq fan-out runs over ``reps`` repetitions; print the table."""
    rate = Samples("topic fan-out x8", "deliveries/s", "1/s", higher_is_better=True)
    cpu = Samples("topic fan-out x8", "CPU µs/dlv", "µs", higher_is_better=False)
    for rep in range(reps):
        # Which side goes first alternates, so neither always meets a warmer broker.
        ours_rate, raw_rate, ours_cpu, raw_cpu = await one_round(ours_first=rep % 2 == 1)
        rate.ours.append(ours_rate)
        rate.raw.append(raw_rate)
        cpu.ours.append(ours_cpu)
        cpu.raw.append(raw_cpu)
    report([rate, cpu], json_path=json_path)
