"""The RPC measurement every async client shares: p50/p99 at c=1, calls/s at c=64."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench._common import Order, make_order
from bench._proc import Window

Call = Callable[[Order], Awaitable[Order]]


async def measure_rpc(
    call: Call,
    *,
    calls: int,
    latency_calls: int,
    concurrency: int,
    broker: int | None,
    **_: Any,
) -> dict[str, Any]:
    """Sequential calls (latency, CPU per call), then ``calls`` calls ``concurrency`` at once.

    Every reply is an :class:`Order` validated by the client (the server validated the
    request); its id is checked against the request's.
    """
    for n in range(20):  # warm up
        await call(make_order(n))
    samples = []
    with Window(broker) as c1:
        for n in range(latency_calls):
            order = make_order(n)
            started = time.perf_counter()
            reply = await call(order)
            samples.append((time.perf_counter() - started) * 1000)
            assert reply.order_id == order.order_id
    samples.sort()
    counter = iter(range(calls))

    async def worker() -> None:
        for n in counter:
            order = make_order(n)
            reply = await call(order)
            assert reply.order_id == order.order_id

    with Window(broker) as c64:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    one, many = c1.per_op(latency_calls), c64.per_op(calls)
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[max(0, int(len(samples) * 0.99) - 1)],
        "c1_client_us": one["client_us"],
        "c1_broker_us": one["broker_us"],
        "c64_rate": many["rate"],
        "c64_client_us": many["client_us"],
        "c64_broker_us": many["broker_us"],
    }
