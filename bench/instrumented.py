"""Instrumentation overhead: burrowmq with Prometheus and OpenTelemetry on, then off.

Usage: ``python -m bench.instrumented [--reps 5] [--sampling 1.0] [--tracer sdk|noop]
[--upstream none|traced] [--client burrowmq|faststream]``. In one run, alternating which
goes first: draining 20,000 messages (client CPU per message, and messages/s) and 2,000
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

``--client faststream`` measures the peer the same way, the drain only: FastStream's
consumer as in its benchmark client (the handler takes the :class:`Order`, acked after
it, prefetch 256) with ``middlewares=[RabbitTelemetryMiddleware(tracer_provider=...),
RabbitPrometheusMiddleware(registry=...)]`` on the same tracer provider (or the
Prometheus one alone at ``--sampling 0``), and without. Each variant runs in a fresh
process, so neither inherits the other's imports, tracer or span processor thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
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


def _tracer_provider() -> Any:
    """The tracer provider of the instrumented runs: the SDK's (sampling ``SAMPLING`` of
    the traces, a batch processor exporting to nothing), the API's no-op one
    (``--tracer noop``), or None when ``--sampling 0`` leaves tracing out."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    if TRACER == "noop":
        from opentelemetry.trace import NoOpTracerProvider

        return NoOpTracerProvider()
    if not SAMPLING:
        return None
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(SAMPLING)))
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    return provider


def _instruments() -> list[Any]:
    from prometheus_client import CollectorRegistry

    from burrowmq.instrumentation import OpenTelemetry, Prometheus

    metrics = Prometheus(CollectorRegistry())
    provider = _tracer_provider()
    if provider is None:
        return [metrics]
    return [metrics, OpenTelemetry(tracer_provider=provider)]


async def consume(instrumented: bool) -> tuple[float, float]:
    """CPU µs per message draining a prefilled queue, and messages/s."""
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
    return timer.cpu / COUNT * 1e6, COUNT / timer.wall


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


async def faststream_consume(instrumented: bool, queue: str) -> dict[str, float]:
    """FastStream draining ``queue`` (prefilled by the parent) as its benchmark client
    does, with its own Prometheus and OpenTelemetry middlewares on the same tracer
    provider as burrowmq's, or none: CPU µs per message and messages/s."""
    from faststream.rabbit import RabbitBroker
    from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
    from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
    from prometheus_client import CollectorRegistry

    from bench.clients.with_faststream import counting_consumer

    middlewares: list[Any] = []
    if instrumented:
        provider = _tracer_provider()
        if provider is not None:
            middlewares.append(RabbitTelemetryMiddleware(tracer_provider=provider))
        middlewares.append(RabbitPrometheusMiddleware(registry=CollectorRegistry()))
    rabbit = RabbitBroker(URL, logger=None, middlewares=middlewares)
    done = counting_consumer(rabbit, queue, COUNT, 256)

    with Timer() as timer:
        await rabbit.start()
        await done.wait()
    await rabbit.stop()
    return {"cpu_us": timer.cpu / COUNT * 1e6, "rate": COUNT / timer.wall}


def faststream_run(instrumented: bool) -> tuple[float, float]:
    """One FastStream variant in a fresh process (so neither inherits the other's
    imports, tracer or span processor thread) on a queue filled and deleted here."""
    queue = unique("instr.faststream")
    asyncio.run(prefill(queue, COUNT, headers=_upstream if UPSTREAM == "traced" else None))
    try:
        command = [
            sys.executable,
            "-m",
            "bench.instrumented",
            "--client=faststream",
            f"--variant={'instrumented' if instrumented else 'plain'}",
            f"--queue={queue}",
            f"--sampling={SAMPLING!r}",
            f"--tracer={TRACER}",
        ]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=600, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        asyncio.run(delete_queues(queue))
    return figures["cpu_us"], figures["rate"]


def _table(ratios: dict[str, list[float]], figures: dict[str, list[tuple[float, float]]]) -> None:
    print("metric          instrumented   plain   ratio (median, min-max)")
    for key, values in ratios.items():
        on = statistics.median(f[0] for f in figures[key])
        off = statistics.median(f[1] for f in figures[key])
        print(
            f"{key:15} {on:12.2f} {off:7.2f}   {statistics.median(values):.3f} "
            f"({min(values):.3f}-{max(values):.3f})"
        )


def _record(
    ratios: dict[str, list[float]],
    figures: dict[str, list[tuple[float, float]]],
    key: str,
    on: float,
    off: float,
) -> None:
    ratios[key].append(on / off)
    figures[key].append((on, off))


def faststream_main(reps: int) -> None:
    """The consume scenario for FastStream, each variant in its own process."""
    ratios: dict[str, list[float]] = {"consume CPU": [], "consume msg/s": []}
    figures: dict[str, list[tuple[float, float]]] = {key: [] for key in ratios}
    for rep in range(reps):
        order = [True, False] if rep % 2 else [False, True]
        cpu: dict[bool, tuple[float, float]] = {}
        for instrumented in order:
            cpu[instrumented] = faststream_run(instrumented)
        _record(ratios, figures, "consume CPU", cpu[True][0], cpu[False][0])
        _record(ratios, figures, "consume msg/s", cpu[True][1], cpu[False][1])
        print(
            f"rep {rep + 1}/{reps}: faststream consume CPU {cpu[True][0]:.0f} vs "
            f"{cpu[False][0]:.0f} µs/msg, {cpu[True][1]:.0f} vs {cpu[False][1]:.0f} msg/s",
            file=sys.stderr,
        )
    _table(ratios, figures)


async def main(reps: int) -> None:
    ratios: dict[str, list[float]] = {
        "consume CPU": [],
        "consume msg/s": [],
        "rpc p50": [],
        "rpc c=64": [],
    }
    figures: dict[str, list[tuple[float, float]]] = {key: [] for key in ratios}
    for rep in range(reps):
        order = [True, False] if rep % 2 else [False, True]
        cpu: dict[bool, tuple[float, float]] = {}
        lat: dict[bool, tuple[float, float]] = {}
        for instrumented in order:
            cpu[instrumented] = await consume(instrumented)
        for instrumented in order:
            lat[instrumented] = await rpc(instrumented)
        _record(ratios, figures, "consume CPU", cpu[True][0], cpu[False][0])
        _record(ratios, figures, "consume msg/s", cpu[True][1], cpu[False][1])
        _record(ratios, figures, "rpc p50", lat[True][0], lat[False][0])
        _record(ratios, figures, "rpc c=64", lat[True][1], lat[False][1])
        print(
            f"rep {rep + 1}/{reps}: consume CPU {cpu[True][0]:.0f} vs {cpu[False][0]:.0f} "
            f"µs/msg, {cpu[True][1]:.0f} vs {cpu[False][1]:.0f} msg/s; "
            f"rpc p50 {lat[True][0]:.2f} vs {lat[False][0]:.2f} ms; "
            f"c=64 {lat[True][1]:.0f} vs {lat[False][1]:.0f} calls/s",
            file=sys.stderr,
        )
    _table(ratios, figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.instrumented", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sampling", type=float, default=1.0)
    parser.add_argument("--tracer", choices=("sdk", "noop"), default="sdk")
    parser.add_argument("--upstream", choices=("none", "traced"), default="none")
    parser.add_argument("--client", choices=("burrowmq", "faststream"), default="burrowmq")
    # One FastStream variant draining one queue, run by faststream_run in a child process.
    parser.add_argument("--variant", choices=("plain", "instrumented"), help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SAMPLING = args.sampling
    TRACER = args.tracer
    UPSTREAM = args.upstream
    if args.client == "faststream":
        if args.queue is not None:
            result = asyncio.run(faststream_consume(args.variant == "instrumented", args.queue))
            print(json.dumps(result), flush=True)
        else:
            faststream_main(args.reps)
    else:
        from burrowmq.framework.log import configure

        configure("warning")
        asyncio.run(main(args.reps))
