"""Stream: read a prefilled stream from its first offset, validating a pydantic model.

Both sides read the same stream (a stream keeps its messages), in turn.
raw: hand-written aio-pika, prefetch 256, ``x-stream-offset: first``, ``await
message.ack()`` per message.
burrowmq: ``router.stream(stream, consumer=..., offset="first", prefetch=256)``, a named
consumer (its mark stored every 1,000 messages), with the same model.
"""

from __future__ import annotations

import asyncio

import aio_pika

from bench._common import URL, Order, Samples, Timer, delete_queues, prefill, report, unique

COUNT = 20_000
PREFETCH = 256


async def run_raw(stream: str, count: int) -> Timer:
    """Read ``count`` messages of ``stream`` with hand-written aio-pika; return the timer."""
    done = asyncio.Event()
    seen = 0
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        q = await channel.declare_queue(stream, passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            Order.model_validate_json(message.body)
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        with Timer() as timer:
            tag = await q.consume(on_message, arguments={"x-stream-offset": "first"})
            await done.wait()
        await q.cancel(tag)
    return timer


async def run_burrowmq(stream: str, consumer: str, count: int, concurrency: int = 16) -> Timer:
    """Read ``count`` messages of ``stream`` with a burrowmq stream route; return the timer."""
    from burrowmq import App, Router

    done = asyncio.Event()
    seen = 0
    router = Router()

    @router.stream(
        stream, consumer=consumer, offset="first", prefetch=PREFETCH, concurrency=concurrency
    )
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
    """One raw and one burrowmq read of a fresh stream; messages/s and CPU µs/message."""
    stream = unique("stream")
    consumer = f"{stream}.ours"
    await prefill(stream, count, queue_type="stream")
    try:
        if ours_first:
            ours = await run_burrowmq(stream, consumer, count)
            raw = await run_raw(stream, count)
        else:
            raw = await run_raw(stream, count)
            ours = await run_burrowmq(stream, consumer, count)
    finally:
        await delete_queues(stream, consumer, f"{stream}.{consumer}.offset")
    return count / ours.wall, count / raw.wall, ours.cpu / count * 1e6, raw.cpu / count * 1e6


async def main(reps: int, json_path: str | None) -> None:
    """Interleave raw and burrowmq stream reads over ``reps`` repetitions; print the table."""
    rate = Samples("stream read 20k", "msgs/s", "1/s", higher_is_better=True)
    cpu = Samples("stream read 20k", "CPU µs/msg", "µs", higher_is_better=False)
    for rep in range(reps):
        # Which side goes first alternates, so neither always meets a warmer broker.
        ours_rate, raw_rate, ours_cpu, raw_cpu = await one_round(ours_first=rep % 2 == 1)
        rate.ours.append(ours_rate)
        rate.raw.append(raw_rate)
        cpu.ours.append(ours_cpu)
        cpu.raw.append(raw_cpu)
    report([rate, cpu], json_path=json_path)


if __name__ == "__main__":
    asyncio.run(main(3, None))
