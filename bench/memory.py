"""Memory: consuming 100,000 messages must not grow the process without bound.

Prefills a queue with 100,000 messages, drains it with a burrowmq consumer (prefetch
256, concurrency 16) while sampling the resident set size, and prints the start, peak
and end RSS. A bounded consumer holds at most ``prefetch`` deliveries at once, so the
peak stays near the start whatever the queue's length.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from bench._common import URL, Order, delete_queues, prefill, unique

COUNT = 100_000


def rss_mb() -> float:
    """The current resident set size, in MiB (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def main(json_path: str | None = None, count: int = COUNT) -> dict[str, float]:
    """Drain ``count`` messages and report RSS (MiB) at start, peak and end."""
    from burrowmq import App, Router

    queue = unique("memory")
    await prefill(queue, count)
    done = asyncio.Event()
    seen = 0
    router = Router()

    @router.consume(queue, prefetch=256, concurrency=16, dead_letter=False)
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(rss_mb())
            await asyncio.sleep(0.05)

    start = rss_mb()
    sampler = asyncio.get_running_loop().create_task(sample())
    app = App([router], url=URL, name="bench-memory")
    try:
        await app.start()
        await done.wait()
        await app.stop()
    finally:
        sampler.cancel()
        await delete_queues(queue)
    end = rss_mb()
    result = {
        "scenario": "memory 100k",
        "messages": count,
        "rss_start_mib": round(start, 1),
        "rss_peak_mib": round(max([*samples, end]), 1),
        "rss_end_mib": round(end, 1),
        "growth_mib": round(max([*samples, end]) - start, 1),
    }
    line = json.dumps(result)
    print(line)
    if json_path:
        _append(json_path, line)
    return result


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


if __name__ == "__main__":
    from burrowmq.framework.log import configure

    configure("warning")
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
