"""Depends: the per-delivery cost of a route with two dependencies, against none.

On the in-memory transport (no broker, so the pipeline's own cost shows), a queue is
prefilled with ``--count`` messages and drained by one route; the route takes the
``Order`` payload and, in the second variant, two dependencies as well (a sync factory
and an async generator, the shape of "settings" and "a database session"). The two
variants alternate over ``--reps`` repetitions; the output is the median microseconds
per delivery of each, every sample, and the difference. Not a test: nothing asserts a
timing.

    .venv/bin/python -m bench.depends --reps 7 --count 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from bench._common import Order, payload

COUNT = 20_000


def settings() -> str:
    """A sync factory."""
    return "dsn"


async def session() -> AsyncIterator[str]:
    """An async generator factory: set up before the handler, torn down after."""
    yield "session"


async def drain(count: int, *, with_depends: bool) -> float:
    """Microseconds per delivery to drain ``count`` prefilled messages through one route."""
    from burrowmq import App, Depends, Router
    from burrowmq.framework.transport import Properties
    from burrowmq.memory.transport import MemoryTransport

    url = f"memory://bench-depends-{uuid.uuid4().hex[:8]}"
    queue = "bench.depends"
    operator = MemoryTransport.shared(url)
    await operator.connect()
    await operator.declare_queue(queue)
    props = Properties(content_type="application/json")
    for n in range(count):
        await operator.publish("", queue, payload(n), props)
    done = asyncio.Event()
    seen = 0
    router = Router()

    def finished() -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    if with_depends:

        @router.consume(queue, prefetch=256, concurrency=16, dead_letter=False)
        async def handle_with(
            order: Order,
            dsn: Annotated[str, Depends(settings)],
            db: Annotated[str, Depends(session)],
        ) -> None:
            finished()

    else:

        @router.consume(queue, prefetch=256, concurrency=16, dead_letter=False)
        async def handle(order: Order) -> None:
            finished()

    app = App([router], url=url, name="bench-depends")
    started = time.perf_counter()
    await app.start()
    await done.wait()
    elapsed = time.perf_counter() - started
    await app.stop()
    await operator.close()
    return elapsed / count * 1e6


async def main(reps: int, count: int) -> dict[str, object]:
    """Alternate the two variants ``reps`` times; report medians (µs per delivery)."""
    await drain(min(count, 2000), with_depends=True)  # warm up imports and caches
    none: list[float] = []
    two: list[float] = []
    for _ in range(reps):
        none.append(await drain(count, with_depends=False))
        two.append(await drain(count, with_depends=True))
    result: dict[str, object] = {
        "scenario": f"depends memory {count // 1000}k",
        "reps": reps,
        "us_per_delivery_no_depends": round(statistics.median(none), 2),
        "us_per_delivery_two_depends": round(statistics.median(two), 2),
        "extra_us_per_delivery": round(
            statistics.median([t - n for t, n in zip(two, none, strict=True)]), 2
        ),
        "samples_no_depends": [round(v, 2) for v in none],
        "samples_two_depends": [round(v, 2) for v in two],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--count", type=int, default=COUNT)
    args = parser.parse_args()
    asyncio.run(main(args.reps, args.count))
