"""What one confirmed publish costs, in instructions and event-loop iterations, on RabbitMQ.

Usage: ``python -m bench.publish_cost [--small 200] [--large 1000] [--client burrowmq]
[--split 2000] [--no-callgrind]``. Needs valgrind for the instruction counts.

Instructions: the bench's own ``publish`` scenario (``python -m bench._child CLIENT
publish ...``: one ``await app.publish(...)`` at a time, persistent, confirmed) runs
twice under ``valgrind --tool=callgrind``, with ``--small`` and with ``--large``
messages, each in a fresh process; start-up, connecting and shutting down cost the same
in both, so ``(I(large) - I(small)) / (large - small)`` is what one publish costs.
Instruction counts do not depend on the load of this shared machine; the event loop's
timing under valgrind still moves them by a percent or so.

Split (``--split N``, in this process, no valgrind): after 100 publishes of warm-up, N
more are counted: event-loop iterations (``_run_once``) and callbacks run per publish;
then N more run under cProfile: Python function calls per publish, and the profiled
time split by layer (burrowmq, aiormq, pamqp, asyncio, other), the time of a C function
(a socket send, a dict method) going to the layers that called it, the time blocked in
``epoll`` (waiting for the broker) left out. cProfile's time is not instructions (it
weighs call overhead more), but the shares say which layer to cut.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import declare, delete_queues, make_order, unique

LAYERS = ("burrowmq", "aiormq", "pamqp", "asyncio", "other")


def instructions(client: str, queue: str, count: int, out: Path) -> int:
    """Instructions callgrind counts for one whole ``bench._child CLIENT publish`` run."""
    params = json.dumps({"queue": queue, "count": count, "broker": None})
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "bench._child",
        client,
        "publish",
        params,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise RuntimeError(f"{client} publish x{count} failed:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def layer_of(filename: str) -> str:
    """The layer a profiled function belongs to, by its source file."""
    for layer in ("burrowmq", "aiormq", "pamqp", "asyncio"):
        if f"/{layer}/" in filename:
            return layer
    return "other"


async def _split(count: int) -> dict[str, Any]:
    from burrowmq import App

    queue = unique("publish-cost")
    await declare(queue)
    orders = [make_order(n) for n in range(count + 100)]
    loop = asyncio.get_running_loop()
    counts = {"iterations": 0, "callbacks": 0}
    base = type(loop)
    run_once = base._run_once  # type: ignore[attr-defined]
    handle_run = asyncio.Handle._run

    def counted_run_once(self: Any) -> None:
        counts["iterations"] += 1
        run_once(self)

    def counted_run(self: Any) -> None:
        counts["callbacks"] += 1
        handle_run(self)

    app = App(url=os.environ.get("BURROWMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    await app.start()
    profiler = cProfile.Profile()
    try:
        for order in orders[:100]:
            await app.publish("", order, routing_key=queue)
        base._run_once = counted_run_once  # type: ignore[attr-defined]
        asyncio.Handle._run = counted_run  # type: ignore[method-assign]
        try:
            for order in orders[100:]:
                await app.publish("", order, routing_key=queue)
        finally:
            base._run_once = run_once  # type: ignore[attr-defined]
            asyncio.Handle._run = handle_run  # type: ignore[method-assign]
        profiler.enable()
        for order in orders[100:]:
            await app.publish("", order, routing_key=queue)
        profiler.disable()
    finally:
        await app.stop()
        await delete_queues(queue)
    stats = pstats.Stats(profiler)
    by_layer = dict.fromkeys(LAYERS, 0.0)
    calls = 0
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, ncalls, tottime, _, callers) in raw.items():
        calls += ncalls
        if "epoll" in name:
            continue  # waiting for the broker, not work
        if filename != "~":
            by_layer[layer_of(filename)] += tottime
            continue
        # A C function (a builtin or a method of a C type): its time goes to the layers
        # that called it, in proportion to the time spent in it from each.
        spent = sum(entry[2] for entry in callers.values()) or 1.0
        for (caller_file, _, _), entry in callers.items():
            by_layer[layer_of(caller_file)] += tottime * entry[2] / spent
    total = sum(by_layer.values()) or 1.0
    return {
        "publishes": count,
        "loop_iterations_per_publish": round(counts["iterations"] / count, 2),
        "callbacks_per_publish": round(counts["callbacks"] / count, 2),
        "python_calls_per_publish": round(calls / count, 1),
        "share_by_layer": {k: round(v / total, 3) for k, v in by_layer.items()},
    }


async def _queue(create: bool, name: str) -> None:
    if create:
        await declare(name)
    else:
        await delete_queues(name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_cost", description=__doc__)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--client", default="burrowmq")
    parser.add_argument("--split", type=int, default=2000, help="0: skip the split")
    parser.add_argument("--no-callgrind", action="store_true")
    args = parser.parse_args()
    if args.split:
        print(json.dumps({"split": asyncio.run(_split(args.split))}), flush=True)
    if args.no_callgrind:
        return
    queue = unique("publish-cost")
    asyncio.run(_queue(True, queue))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            small = instructions(args.client, queue, args.small, Path(tmp) / "small.out")
            large = instructions(args.client, queue, args.large, Path(tmp) / "large.out")
    finally:
        asyncio.run(_queue(False, queue))
    per = (large - small) / (args.large - args.small)
    print(
        json.dumps(
            {
                "client": args.client,
                "small": [args.small, small],
                "large": [args.large, large],
                "instructions_per_publish": round(per),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
