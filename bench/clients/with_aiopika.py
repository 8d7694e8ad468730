"""Hand-written aio-pika, the way its documentation shows: the asyncio baseline.

consume: prefetch 256, ``Order.model_validate_json``, ``await message.ack()``.
publish: ``await exchange.publish(Message(..., persistent))`` on a confirming channel;
batch: 256 in flight (a semaphore and ``gather``). rpc: two clients, the direct reply-to
one of ``bench/_raw_rpc.py`` (``aiopika``) and ``aio_pika.patterns.RPC``
(``aiopika-patterns``, its pickled call carrying the JSON bytes), each against its own
server.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aio_pika
from aio_pika.patterns import RPC

from bench._common import URL, Order, make_order
from bench._proc import Window
from bench._raw_rpc import RawClient, RawServer
from bench.clients._rpc import Call, measure_rpc


async def consume(*, queue: str, count: int, prefetch: int, broker: int | None) -> dict[str, Any]:
    done = asyncio.Event()
    seen = 0
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        q = await channel.declare_queue(queue, passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            Order.model_validate_json(message.body)
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        with Window(broker) as window:
            tag = await q.consume(on_message)
            await done.wait()
        await q.cancel(tag)
    return window.per_op(count)


async def _publish(queue: str, count: int, broker: int | None, window_size: int) -> Window:
    orders = [make_order(n) for n in range(count)]
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

        with Window(broker) as window:
            if window_size > 1:
                semaphore = asyncio.Semaphore(window_size)

                async def one(order: Order) -> None:
                    async with semaphore:
                        await exchange.publish(message(order), routing_key=queue)

                await asyncio.gather(*(one(o) for o in orders))
            else:
                for order in orders:
                    await exchange.publish(message(order), routing_key=queue)
    return window


async def publish(*, queue: str, count: int, broker: int | None) -> dict[str, Any]:
    return (await _publish(queue, count, broker, 1)).per_op(count)


async def batch(*, queue: str, count: int, window: int, broker: int | None) -> dict[str, Any]:
    return (await _publish(queue, count, broker, window)).per_op(count)


async def rpc(**params: Any) -> dict[str, Any]:
    client = RawClient(URL, params["queue"])
    await client.start()
    try:
        return await measure_rpc(client.call, **params)
    finally:
        await client.stop()


async def rpc_patterns(**params: Any) -> dict[str, Any]:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        client = await RPC.create(channel)

        async def call(order: Order) -> Order:
            body = await client.call(params["queue"], {"body": order.model_dump_json().encode()})
            return Order.model_validate_json(body)

        typed: Call = call
        figures = await measure_rpc(typed, **params)
        await client.close()
    return figures


async def serve_rpc(*, queue: str, prefetch: int) -> None:
    server = RawServer(URL, queue, prefetch=prefetch)
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()


async def serve_rpc_patterns(*, queue: str, prefetch: int) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        server = await RPC.create(channel)

        async def echo(*, body: bytes) -> bytes:
            return Order.model_validate_json(body).model_dump_json().encode()

        await server.register(queue, echo, auto_delete=True)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.close()


SCENARIOS = {"consume": consume, "publish": publish, "batch": batch, "rpc": rpc}
VARIANTS = {"aiopika-patterns": {"rpc": rpc_patterns}}
SERVERS = {"aiopika": serve_rpc, "aiopika-patterns": serve_rpc_patterns}
