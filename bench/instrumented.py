"""Instrumentation overhead: burrowmq with Prometheus and OpenTelemetry on, then off.

Usage: ``python -m bench.instrumented [--reps 5] [--sampling 1.0] [--tracer sdk|noop]
[--upstream none|traced]``. In one run,
alternating which goes first: draining 20,000 messages (client CPU per message) and 2,000
RPC calls one at a time (p50 latency) and 64 at a time (calls/s), with ``App(
instrumentation=[Prometheus(), OpenTelemetry()])`` (the real SDK: a tracer provider whose
parent-based sampler keeps ``--sampling`` of the traces, a batch processor exporting to
nothing) and without; ``--sampling 0`` leaves tracing out (Prometheus alone);
``--tracer noop`` traces with the API's no-op tracer provider instead of the SDK's: what
burrowmq's own tracing code costs, with next to nothing of the SDK's. The drained
messages carry no trace context (``--upstream none``: each consumed message starts a
trace, the worst case), or a W3C ``traceparent`` of an upstream service that sampled
``--sampling`` of its traces (``--upstream traced``: a traced system). The ratio
instrumented/plain is per repetition, its median printed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from typing import Any

from bench._common import URL, Order, Timer, delete_queues, make_order, prefill, unique

COUNT = 20_000
CALLS = 2_000


SAMPLING = 1.0
TRACER = "sdk"
UPSTREAM = "none"


def _upstream(n: int) -> dict[str, Any]:
    """The trace context an upstream service that samples ``SAMPLING`` of its traces
    puts in message ``n``."""
    sampled = random.random() < SAMPLING
    trace_id, span_id = random.getrandbits(128) | 1, random.getrandbits(64) | 1
    return {"traceparent": f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"}


def _instruments() -> list[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from prometheus_client import CollectorRegistry

    from burrowmq.instrumentation import OpenTelemetry, Prometheus

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    metrics = Prometheus(CollectorRegistry())
    if TRACER == "noop":
        from opentelemetry.trace import NoOpTracerProvider

        return [metrics, OpenTelemetry(tracer_provider=NoOpTracerProvider())]
    if not SAMPLING:
        return [metrics]
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(SAMPLING)))
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    return [metrics, OpenTelemetry(tracer_provider=provider)]


async def consume(instrumented: bool) -> float:
    """CPU µs per message draining a prefilled queue."""
    from burrowmq import App, Router

    queue = unique("instr.consume")
    await prefill(queue, COUNT, headers=_upstream if UPSTREAM == "traced" else None)
    done = asyncio.Event()
    seen = 0
    router = Router()

    @router.consume(queue, prefetch=256, dead_letter=False)
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen == COUNT:
            done.set()

    app = App(
        [router], url=URL, name="bench", instrumentation=_instruments() if instrumented else []
    )
    try:
        with Timer() as timer:
            await app.start()
            await done.wait()
        await app.stop()
    finally:
        await delete_queues(queue)
    return timer.cpu / COUNT * 1e6


async def rpc(instrumented: bool) -> tuple[float, float]:
    """p50 latency (ms) one call at a time, calls/s at 64 in flight."""
    from burrowmq import App, Router

    service = f"instr{uuid.uuid4().hex[:8]}"
    router = Router()

    @router.rpc(f"{service}.echo", concurrency=64, prefetch=128)
    async def echo(order: Order) -> Order:
        return order

    instruments = _instruments() if instrumented else []
    server = App([router], url=URL, name="bench-server", instrumentation=instruments)
    client = App(url=URL, name="bench-client", instrumentation=instruments)
    order = make_order(0)
    async with server, client:
        for _ in range(100):
            await client.call(f"{service}.echo", order, returns=Order, timeout=10)
        latencies = []
        for _ in range(CALLS // 4):
            started = time.perf_counter()
            await client.call(f"{service}.echo", order, returns=Order, timeout=10)
            latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                client.call(f"{service}.echo", order, returns=Order, timeout=30)
                for _ in range(CALLS)
            )
        )
        rate = CALLS / (time.perf_counter() - started)
    await delete_queues(f"rpc.{service}")
    return statistics.median(latencies) * 1000, rate


async def main(reps: int) -> None:
    ratios: dict[str, list[float]] = {"consume CPU": [], "rpc p50": [], "rpc c=64": []}
    figures: dict[str, list[tuple[float, float]]] = {key: [] for key in ratios}
    for rep in range(reps):
        order = [True, False] if rep % 2 else [False, True]
        cpu: dict[bool, float] = {}
        lat: dict[bool, tuple[float, float]] = {}
        for instrumented in order:
            cpu[instrumented] = await consume(instrumented)
        for instrumented in order:
            lat[instrumented] = await rpc(instrumented)
        ratios["consume CPU"].append(cpu[True] / cpu[False])
        ratios["rpc p50"].append(lat[True][0] / lat[False][0])
        ratios["rpc c=64"].append(lat[True][1] / lat[False][1])
        figures["consume CPU"].append((cpu[True], cpu[False]))
        figures["rpc p50"].append((lat[True][0], lat[False][0]))
        figures["rpc c=64"].append((lat[True][1], lat[False][1]))
        print(
            f"rep {rep + 1}/{reps}: consume CPU {cpu[True]:.0f} vs {cpu[False]:.0f} µs/msg; "
            f"rpc p50 {lat[True][0]:.2f} vs {lat[False][0]:.2f} ms; "
            f"c=64 {lat[True][1]:.0f} vs {lat[False][1]:.0f} calls/s",
            file=sys.stderr,
        )
    print("metric          instrumented   plain   ratio (median, min-max)")
    for key, values in ratios.items():
        on = statistics.median(f[0] for f in figures[key])
        off = statistics.median(f[1] for f in figures[key])
        print(
            f"{key:15} {on:12.2f} {off:7.2f}   {statistics.median(values):.3f} "
            f"({min(values):.3f}-{max(values):.3f})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.instrumented", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sampling", type=float, default=1.0)
    parser.add_argument("--tracer", choices=("sdk", "noop"), default="sdk")
    parser.add_argument("--upstream", choices=("none", "traced"), default="none")
    args = parser.parse_args()
    SAMPLING = args.sampling
    TRACER = args.tracer
    UPSTREAM = args.upstream
    from burrowmq.framework.log import configure

    configure("warning")
    asyncio.run(main(args.reps))
