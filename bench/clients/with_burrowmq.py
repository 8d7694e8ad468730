"""burrowmq: the code under test.

consume: ``router.consume(queue, prefetch=256)`` with a handler taking the
:class:`~bench._common.Order`. publish: ``await app.publish("", order, routing_key=q)``
(persistent, confirmed); batch: ``await app.publish_many("", orders, window=256)``.
rpc: ``@router.rpc("<service>.echo", prefetch=64, concurrency=64)`` and
``app.call(..., returns=Order)``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from bench._common import URL, Order, make_order
from bench._proc import Window
from bench.clients._rpc import measure_rpc
from burrowmq import App, Router


async def consume(
    *, queue: str, count: int, prefetch: int, broker: int | None, concurrency: int = 16
) -> dict[str, Any]:
    done = asyncio.Event()
    seen = 0
    router = Router()

    @router.consume(queue, prefetch=prefetch, concurrency=concurrency, dead_letter=False)
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    app = App([router], url=URL, name="bench")
    # Starting connects and declares (the others do that outside the window too), but it
    # also starts consuming: the window opens before it, a few ms of setup included.
    with Window(broker) as window:
        await app.start()
        await done.wait()
    await app.stop()
    return window.per_op(count)


async def _publish(queue: str, count: int, broker: int | None, window_size: int) -> Window:
    orders = [make_order(n) for n in range(count)]
    app = App(url=URL, name="bench")
    await app.start()
    try:
        with Window(broker) as window:
            if window_size > 1:
                await app.publish_many("", orders, routing_key=queue, window=window_size)
            else:
                for order in orders:
                    await app.publish("", order, routing_key=queue)
    finally:
        await app.stop()
    return window


async def publish(*, queue: str, count: int, broker: int | None) -> dict[str, Any]:
    return (await _publish(queue, count, broker, 1)).per_op(count)


async def batch(*, queue: str, count: int, window: int, broker: int | None) -> dict[str, Any]:
    return (await _publish(queue, count, broker, window)).per_op(count)


async def rpc(**params: Any) -> dict[str, Any]:
    app = App(url=URL, name="bench-rpc-client")
    await app.start()
    procedure = f"{params['queue']}.echo"

    async def call(order: Order) -> Order:
        reply: Order = await app.call(procedure, order, returns=Order, timeout=10)
        return reply

    try:
        return await measure_rpc(call, **params)
    finally:
        await app.stop()


async def serve_rpc(*, queue: str, prefetch: int) -> None:
    router = Router()

    @router.rpc(f"{queue}.echo", prefetch=prefetch, concurrency=prefetch)
    async def echo(order: Order) -> Order:
        return order

    async with App([router], url=URL, name="bench-rpc-server", shutdown_timeout=5):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


SCENARIOS = {"consume": consume, "publish": publish, "batch": batch, "rpc": rpc}
SERVERS = {"burrowmq": serve_rpc}
