"""RPC: latency at concurrency 1 and calls/s at concurrency 64, burrowmq vs raw aio-pika.

Both servers run in one child process (``python -m bench.rpc --serve``), both clients in
this one, so neither side steals the other's CPU inside one event loop. Each request is
an :class:`~bench._common.Order`, validated by the server and sent back, and the reply
is validated again by the client, on both sides of the comparison.

raw: hand-written aio-pika (``bench/_raw_rpc.py``): default exchange, classic queue,
direct reply-to, confirms on, server prefetch 64.
burrowmq: ``router.rpc("<service>.echo", prefetch=64, concurrency=64)`` and
``app.call(..., returns=Order)``.

The scenarios are interleaved over several repetitions (the order alternating), and the
medians are printed with their ratio burrowmq/raw (latency: lower is better; calls/s:
higher is better).

Usage: ``python -m bench.rpc [--reps 5] [--calls 3000] [--json results.jsonl]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from bench._common import URL, Order, Samples, delete_queues, make_order, report, unique
from bench._raw_rpc import RawClient, RawServer
from burrowmq import App, Router
from burrowmq.framework.log import configure
from burrowmq.routing.procedure import service_queue

LATENCY_CALLS = 500
CONCURRENCY = 64
PREFETCH = 64


def _order(n: int) -> Order:
    return make_order(n)


def _server_app(service: str) -> App:
    router = Router()

    @router.rpc(f"{service}.echo", prefetch=PREFETCH, concurrency=CONCURRENCY)
    async def echo(order: Order) -> Order:
        return order

    return App([router], url=URL, name="bench-rpc-server", shutdown_timeout=5)


async def serve(raw_queue: str, service: str) -> None:
    """Run both servers until stdin closes."""
    raw = RawServer(URL, raw_queue, prefetch=PREFETCH)
    await raw.start()
    async with _server_app(service):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await raw.stop()


Call = Callable[[Order], Awaitable[Order]]


async def latency(call: Call, count: int) -> tuple[float, float]:
    """Sequential calls; return p50 and p99 in milliseconds."""
    for n in range(20):  # warm up
        await call(_order(n))
    samples = []
    for n in range(count):
        order = _order(n)
        started = time.perf_counter()
        reply = await call(order)
        samples.append((time.perf_counter() - started) * 1000)
        assert reply.order_id == order.order_id
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def throughput(call: Call, total: int, concurrency: int) -> float:
    """``total`` calls by ``concurrency`` workers; return calls per second."""
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            order = _order(n)
            reply = await call(order)
            assert reply.order_id == order.order_id

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def main(reps: int, calls: int, json_path: str | None) -> None:
    """Start the servers, then measure both clients, interleaved."""
    raw_queue = unique("rpc.raw")
    service = unique("rpcsvc").replace(".", "-")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.rpc",
        "--serve",
        raw_queue,
        service,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line.strip() == b"ready", line
        raw = RawClient(URL, raw_queue)
        await raw.start()
        app = App(url=URL, name="bench-rpc-client")
        await app.start()
        procedure = f"{service}.echo"

        async def ours(order: Order) -> Order:
            reply: Order = await app.call(procedure, order, returns=Order, timeout=10)
            return reply

        sides: dict[str, Call] = {"raw": raw.call, "ours": ours}
        p50 = Samples("rpc c=1", "p50 latency", "ms", higher_is_better=False)
        p99 = Samples("rpc c=1", "p99 latency", "ms", higher_is_better=False)
        rate = Samples(f"rpc c={CONCURRENCY}", "calls/s", "1/s", higher_is_better=True)
        for rep in range(reps):
            order = ("raw", "ours") if rep % 2 == 0 else ("ours", "raw")
            for side in order:
                median, tail = await latency(sides[side], LATENCY_CALLS)
                getattr(p50, side).append(median)
                getattr(p99, side).append(tail)
            for side in order:
                getattr(rate, side).append(await throughput(sides[side], calls, CONCURRENCY))
            print(
                f"rep {rep + 1}/{reps}: p50 raw {p50.raw[-1]:.3f} ours {p50.ours[-1]:.3f} ms; "
                f"c={CONCURRENCY} raw {rate.raw[-1]:.0f} ours {rate.ours[-1]:.0f} calls/s",
                file=sys.stderr,
            )
        await app.stop()
        await raw.stop()
        report([p50, p99, rate], json_path=json_path)
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 30)
        await delete_queues(raw_queue, service_queue(service))


def cli(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the benchmark (or, with ``--serve``, the servers)."""
    parser = argparse.ArgumentParser(prog="python -m bench.rpc", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000, help="calls per throughput run")
    parser.add_argument("--json", help="append the JSON results to this file")
    parser.add_argument(
        "--serve", nargs=2, metavar=("RAW_QUEUE", "SERVICE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    configure("warning")  # an application: logs go to stderr, and only problems
    if args.serve:
        asyncio.run(serve(*args.serve))
    else:
        asyncio.run(main(args.reps, args.calls, args.json))


if __name__ == "__main__":
    cli()
