"""Memory: consuming and publishing many messages must not grow the process without bound.

Usage: ``python -m bench.memory [--messages 100000] [--chunk 1000] [--json FILE]`` (or
``python -m bench --only memory --messages 1000000``). Two phases in one burrowmq process,
the resident set size sampled every 50 ms:

- consume: a queue prefilled with ``--messages`` messages (by this process, before the
  start figure is taken) is drained by a burrowmq consumer (prefetch 256, concurrency 16);
- publish: ``--messages`` messages are published with ``app.publish_many`` in chunks of
  ``--chunk`` (default 1,000; four windows of 256 in flight), built chunk by chunk
  (``publish_many`` builds its whole input and returns every id, so one call with a
  million messages would measure the caller's list, not us; a chunk of 10,000 alone,
  built once, weighs several MiB).

Each phase reports its start, peak and end RSS and the growth (peak - start). A bounded
consumer holds at most ``prefetch`` deliveries at once and a bounded publisher at most one
chunk, so the peak stays near the start whatever the count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from collections.abc import Awaitable, Callable
from typing import Any

from bench._common import URL, Order, declare, delete_queues, make_order, prefill, unique

COUNT = 100_000
CHUNK = 1_000


def rss_mb() -> float:
    """The current resident set size, in MiB (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class Warm:
    """Marks the RSS once a tenth of the messages are through: the working set is built."""

    def __init__(self, samples: list[float]) -> None:
        self.samples = samples
        self.rss: float | None = None
        self.index = 0

    def __call__(self) -> None:
        if self.rss is None:
            self.rss = rss_mb()
            self.index = len(self.samples)


async def sampled(
    phase: str, count: int, work: Callable[[Warm], Awaitable[None]]
) -> dict[str, Any]:
    """Run ``work`` while sampling the RSS; the phase's start, peak, end and growth.

    ``growth_mib`` is peak - start; ``growth_after_warm_mib`` is the peak after the first
    tenth of the messages minus the RSS then, which leaves out the working set (a chunk of
    messages, buffers, pydantic's caches) that is built once and reused: a leak shows
    there, a working set does not.
    """
    samples: list[float] = []
    warm = Warm(samples)

    async def sample() -> None:
        while True:
            samples.append(rss_mb())
            await asyncio.sleep(0.05)

    start = rss_mb()
    sampler = asyncio.get_running_loop().create_task(sample())
    try:
        await work(warm)
    finally:
        sampler.cancel()
    end = rss_mb()
    peak = max([*samples, end])
    warm_rss = warm.rss if warm.rss is not None else start
    warm_peak = max([*samples[warm.index :], end])
    return {
        "scenario": f"memory {phase}",
        "messages": count,
        "rss_start_mib": round(start, 1),
        "rss_warm_mib": round(warm_rss, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_end_mib": round(end, 1),
        "growth_mib": round(peak - start, 1),
        "growth_after_warm_mib": round(warm_peak - warm_rss, 1),
    }


async def consume(count: int) -> dict[str, Any]:
    """Drain ``count`` prefilled messages with a burrowmq consumer, RSS sampled."""
    from burrowmq import App, Router

    queue = unique("memory.consume")
    await prefill(queue, count)
    done = asyncio.Event()
    seen = 0
    tenth = max(1, count // 10)
    warmed: list[Warm] = []
    router = Router()

    @router.consume(queue, prefetch=256, concurrency=16, dead_letter=False)
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen == tenth and warmed:
            warmed[0]()
        if seen == count:
            done.set()

    async def work(warm: Warm) -> None:
        warmed.append(warm)
        app = App([router], url=URL, name="bench-memory")
        await app.start()
        await done.wait()
        await app.stop()

    try:
        return await sampled("consume", count, work)
    finally:
        await delete_queues(queue)


async def publish(count: int, chunk: int = CHUNK) -> dict[str, Any]:
    """Publish ``count`` messages with ``publish_many`` in chunks of ``chunk``, RSS sampled."""
    from burrowmq import App

    queue = unique("memory.publish")
    await declare(queue)

    async def work(warm: Warm) -> None:
        async with App(url=URL, name="bench-memory") as app:
            for start in range(0, count, chunk):
                orders = (make_order(n) for n in range(start, min(count, start + chunk)))
                await app.publish_many("", orders, routing_key=queue, window=256)
                if start + chunk >= count // 10:
                    warm()

    try:
        return await sampled("publish", count, work)
    finally:
        await delete_queues(queue)


async def main(
    json_path: str | None = None, count: int = COUNT, chunk: int = CHUNK
) -> list[dict[str, Any]]:
    """Both phases; print (and append to ``json_path``) one JSON line each and a table."""
    results = [await consume(count), await publish(count, chunk)]
    lines = [json.dumps(result) for result in results]
    print("\n".join(lines))
    if json_path:
        _append(json_path, lines)
    print()
    print("| phase | messages | RSS start / warm / peak / end (MiB) | growth | after warm |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scenario']} | {r['messages']:,} | {r['rss_start_mib']} / "
            f"{r['rss_warm_mib']} / {r['rss_peak_mib']} / {r['rss_end_mib']} | "
            f"{r['growth_mib']} | {r['growth_after_warm_mib']} |"
        )
    return results


def _append(path: str, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    from burrowmq.framework.log import configure

    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--messages", type=int, default=COUNT)
    parser.add_argument("--chunk", type=int, default=CHUNK, help="messages per publish_many")
    parser.add_argument("--json", help="append the JSON lines to this file")
    args = parser.parse_args()
    configure("warning")
    asyncio.run(main(args.json, args.messages, args.chunk))
