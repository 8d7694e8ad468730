"""FastStream (``faststream[rabbit]``), used the way its documentation shows.

consume: ``@broker.subscriber(queue, channel=Channel(prefetch_count=256))`` with a handler
taking the :class:`~bench._common.Order` (FastStream validates it through
fast-depends), acked after the handler (``AckPolicy.ACK``). publish: ``await
broker.publish(order, queue=..., persist=True)`` on its default confirming channel.
rpc: ``await broker.request(order, queue=...)`` against a subscriber that returns the
order (FastStream sends it to ``reply_to``). ``request`` holds a lock per producer, so
FastStream keeps one call in flight however many tasks call it: c=64 measures that.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

from bench._common import URL, Order, make_order
from bench._proc import Window
from bench.clients._rpc import measure_rpc


def _broker() -> RabbitBroker:
    return RabbitBroker(URL, logger=None)


def counting_consumer(rabbit: RabbitBroker, queue: str, count: int, prefetch: int) -> asyncio.Event:
    """Subscribe the consume scenario's handler (an ``Order``, acked after it) to ``queue``
    on ``rabbit``; the event is set once ``count`` messages were handled."""
    done = asyncio.Event()
    seen = 0

    @rabbit.subscriber(
        RabbitQueue(queue, durable=True, declare=False),
        channel=Channel(prefetch_count=prefetch),
        ack_policy=AckPolicy.ACK,
    )
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    return done


async def consume(*, queue: str, count: int, prefetch: int, broker: int | None) -> dict[str, Any]:
    rabbit = _broker()
    done = counting_consumer(rabbit, queue, count, prefetch)
    await rabbit.connect()
    with Window(broker) as window:
        await rabbit.start()
        await done.wait()
    await rabbit.stop()
    return window.per_op(count)


async def publish(*, queue: str, count: int, broker: int | None) -> dict[str, Any]:
    orders = [make_order(n) for n in range(count)]
    rabbit = _broker()
    await rabbit.start()
    try:
        with Window(broker) as window:
            for order in orders:
                await rabbit.publish(order, queue=queue, persist=True)
    finally:
        await rabbit.stop()
    return window.per_op(count)


async def rpc(**params: Any) -> dict[str, Any]:
    rabbit = _broker()
    await rabbit.start()
    queue = params["queue"]

    async def call(order: Order) -> Order:
        reply = await rabbit.request(order, queue=queue, timeout=10)
        return Order.model_validate_json(reply.body)

    try:
        return await measure_rpc(call, **params)
    finally:
        await rabbit.stop()


async def serve_rpc(*, queue: str, prefetch: int) -> None:
    rabbit = _broker()

    @rabbit.subscriber(
        RabbitQueue(queue, durable=True),
        channel=Channel(prefetch_count=prefetch),
    )
    async def echo(order: Order) -> Order:
        return order

    await rabbit.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await rabbit.stop()


SCENARIOS = {"consume": consume, "publish": publish, "rpc": rpc}
SERVERS = {"faststream": serve_rpc}
