"""Instrumentation cost per message, in instructions: callgrind on the memory transport.

Usage: ``python -m bench.instr_cost [--messages 2000] [--warmup 300] [--jobs 1]
[--configs plain,prometheus,otel-0,otel-0.1,otel-1] [--scenarios consume,rpc]
[--json FILE]``. Needs valgrind and a C compiler (for a two-line shim that switches
callgrind's collection on and off from Python).

The wall clock of this machine is noisy; the instruction count of one process under
``valgrind --tool=callgrind`` is not (repeat runs agree to a few tenths of a percent).
Each (scenario, configuration) runs in a process of its own under callgrind, which counts
only the measured phase: after ``--warmup`` messages have gone through (imports, label
children, pydantic's and the SDK's caches built), until ``--messages`` more have.

Scenarios, both in one process on a ``memory://`` broker:

- consume: a queue filled beforehand (straight into the broker, no trace context in the
  headers, as from a service that does not trace) drained by one consumer (prefetch 256);
  the figure is per message handled and acked.
- rpc: one call at a time from a client App to a server App, both instrumented alike:
  the client's publish span and the server's process span, the call and the handler
  counted; the figure is per call (both sides).

Configurations: ``plain`` (no instruments), ``prometheus`` (``Prometheus()`` alone),
``otel-R`` (``Prometheus()`` and ``OpenTelemetry()`` with the SDK's
``ParentBased(TraceIdRatioBased(R))`` sampler and a batch processor exporting to
nothing), ``otel-noop`` (the same with the API's no-op tracer provider: what burrowmq's
own tracing code costs, with next to nothing of the SDK's). The table gives instructions
per message and the overhead against ``plain``.

``--child SCENARIO CONFIG`` runs one measurement in this process (what the driver runs
under callgrind); ``--profile`` runs it under cProfile instead and prints the functions
that cost most (our own and the SDK's, by cumulative time).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench._common import Order, make_order

CONFIGS = ("plain", "prometheus", "otel-noop", "otel-0", "otel-0.1", "otel-1")
SCENARIOS = ("consume", "rpc")

_SHIM = """
#include <valgrind/callgrind.h>
void burrowmq_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
"""


def _toggler(build: Path | None) -> Callable[[], None]:
    """A function that switches callgrind's collection (a no-op outside valgrind)."""
    if build is None:
        return lambda: None
    return ctypes.CDLL(str(build)).burrowmq_toggle  # type: ignore[no-any-return]


def _instruments(config: str) -> list[Any]:
    if config == "plain":
        return []
    from prometheus_client import CollectorRegistry

    from burrowmq.instrumentation import OpenTelemetry, Prometheus

    metrics = Prometheus(CollectorRegistry())
    if config == "prometheus":
        return [metrics]
    if config == "otel-noop":  # the API's tracer, which makes no spans: our side alone
        from opentelemetry.trace import NoOpTracerProvider

        return [metrics, OpenTelemetry(tracer_provider=NoOpTracerProvider())]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    ratio = float(config.removeprefix("otel-"))
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    return [metrics, OpenTelemetry(tracer_provider=provider)]


async def consume(config: str, warmup: int, count: int, toggle: Callable[[], None]) -> None:
    """Drain ``warmup + count`` messages; collect over the last ``count``."""
    from burrowmq import App, Router
    from burrowmq.memory.broker import MemoryBroker

    url = "memory://instr-cost"
    queue = "instr.consume"
    feeder = App(url=url, name="feeder")
    await feeder.start()  # keeps the named broker open
    MemoryBroker.named(url).declare_queue(queue, owner=feeder)
    total = warmup + count
    for start in range(0, total, 1000):
        chunk = [make_order(n) for n in range(start, min(total, start + 1000))]
        await feeder.publish_many("", chunk, routing_key=queue)
    done = asyncio.Event()
    seen = 0
    router = Router()

    @router.consume(queue, prefetch=256, dead_letter=False)
    async def handle(order: Order) -> None:
        nonlocal seen
        seen += 1
        if seen in (warmup, total):
            toggle()
        if seen == total:
            done.set()

    app = App([router], url=url, name="instr-cost", instrumentation=_instruments(config))
    await app.start()
    await done.wait()
    await app.stop()
    await feeder.stop()


async def rpc(config: str, warmup: int, count: int, toggle: Callable[[], None]) -> None:
    """``warmup + count`` calls one at a time; collect over the last ``count``."""
    from burrowmq import App, Router

    url = "memory://instr-cost"
    router = Router()

    @router.rpc("instr.echo")
    async def echo(order: Order) -> Order:
        return order

    instruments = _instruments(config)
    server = App([router], url=url, name="server", instrumentation=instruments)
    client = App(url=url, name="client", instrumentation=instruments)
    order = make_order(0)
    async with server, client:
        for _ in range(warmup):
            await client.call("instr.echo", order, returns=Order, timeout=10)
        toggle()
        for _ in range(count):
            await client.call("instr.echo", order, returns=Order, timeout=10)
        toggle()


def child(scenario: str, config: str, warmup: int, count: int, shim: str | None) -> None:
    """One measurement in this process."""
    from burrowmq.framework.log import configure

    configure("warning")
    run = consume if scenario == "consume" else rpc
    asyncio.run(run(config, warmup, count, _toggler(Path(shim) if shim else None)))


def profile(scenario: str, config: str, warmup: int, count: int) -> None:
    """One measurement under cProfile: the costliest functions, cumulative."""
    import cProfile
    import pstats

    from burrowmq.framework.log import configure

    configure("warning")
    profiler = cProfile.Profile()
    state = {"on": False}

    def toggle() -> None:
        if state["on"]:
            profiler.disable()
        else:
            profiler.enable()
        state["on"] = not state["on"]

    run = consume if scenario == "consume" else rpc
    asyncio.run(run(config, warmup, count, toggle))
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(40)


def build_shim(directory: Path) -> Path:
    """Compile the callgrind toggle shim into ``directory``."""
    source = directory / "shim.c"
    source.write_text(_SHIM)
    built = directory / "shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(built), str(source)], check=True)
    return built


def measure(scenario: str, config: str, warmup: int, count: int, shim: Path, out: Path) -> int:
    """Instructions callgrind counted over the measured phase of one child."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench.instr_cost",
        "--child",
        scenario,
        config,
        "--warmup",
        str(warmup),
        "--messages",
        str(count),
        "--shim",
        str(shim),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise RuntimeError(f"{scenario} {config} failed:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instr_cost", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", help="append one JSON line per figure to this file")
    parser.add_argument("--keep", help="keep the callgrind output files in this directory")
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "CONFIG"))
    parser.add_argument("--profile", nargs=2, metavar=("SCENARIO", "CONFIG"))
    parser.add_argument("--shim")
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.warmup, args.messages, args.shim)
        return
    if args.profile:
        profile(*args.profile, args.warmup, args.messages)
        return
    configs = [c for c in args.configs.split(",") if c]
    scenarios = [s for s in args.scenarios.split(",") if s]
    if bad := (set(configs) - set(CONFIGS)) | (set(scenarios) - set(SCENARIOS)):
        parser.error(f"unknown {sorted(bad)}; configs {CONFIGS}, scenarios {SCENARIOS}")
    if "plain" not in configs:
        configs.insert(0, "plain")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed")
    with tempfile.TemporaryDirectory() as scratch:
        shim = build_shim(Path(scratch))
        keep = Path(args.keep) if args.keep else Path(scratch)
        keep.mkdir(parents=True, exist_ok=True)
        runs = [(s, c) for s in scenarios for c in configs]
        with ThreadPoolExecutor(args.jobs) as pool:
            counts = dict(
                zip(
                    runs,
                    pool.map(
                        lambda run: measure(
                            *run,
                            args.warmup,
                            args.messages,
                            shim,
                            keep / f"callgrind.{run[0]}.{run[1]}.out",
                        ),
                        runs,
                    ),
                    strict=True,
                )
            )
    print(f"instructions per message ({args.messages} measured after {args.warmup})")
    print(f"{'scenario':9} {'config':11} {'instr/msg':>10} {'vs plain':>9}")
    lines = []
    for scenario in scenarios:
        plain = counts[(scenario, "plain")] / args.messages
        for config in configs:
            per = counts[(scenario, config)] / args.messages
            print(f"{scenario:9} {config:11} {per:10.0f} {(per / plain - 1) * 100:+8.1f}%")
            lines.append(
                {
                    "bench": "instr_cost",
                    "scenario": scenario,
                    "config": config,
                    "instructions_per_message": round(per),
                    "overhead": round(per / plain - 1, 4),
                }
            )
    if args.json:
        with open(args.json, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
