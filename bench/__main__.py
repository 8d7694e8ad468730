"""Run every benchmark: burrowmq against hand-written aio-pika, interleaved, in one run.

Usage: ``python -m bench [--reps 5] [--only consume,stream,publish,batch,fanout,rpc,memory]
[--json bench/results/results.jsonl]``. Prints JSON lines, then a table of medians with
the ratio burrowmq/raw and its spread (min-max over the repetitions).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench import consume, fanout, publish, stream
from bench._common import Samples, report
from burrowmq.framework.log import configure

SCENARIOS = ("consume", "stream", "publish", "batch", "fanout", "rpc", "memory")


async def run(reps: int, only: set[str], json_path: str | None) -> None:
    """Interleave raw and burrowmq runs of each scenario over ``reps`` repetitions."""
    rows: list[tuple[Samples, Samples]] = []
    plan = {
        "consume": ("consume 20k", "msgs/s", "CPU µs/msg", consume.one_round),
        "stream": ("stream read 20k", "msgs/s", "CPU µs/msg", stream.one_round),
        "publish": (
            "publish 1-by-1",
            "msgs/s",
            "CPU µs/msg",
            lambda **kw: publish.one_round(batch=False, count=3000, **kw),
        ),
        "batch": (
            "publish batch",
            "msgs/s",
            "CPU µs/msg",
            lambda **kw: publish.one_round(batch=True, **kw),
        ),
        "fanout": ("topic fan-out x8", "deliveries/s", "CPU µs/dlv", fanout.one_round),
    }
    for key, (scenario, rate_name, cpu_name, _) in plan.items():
        if key in only:
            rows.append(
                (
                    Samples(scenario, rate_name, "1/s", higher_is_better=True),
                    Samples(scenario, cpu_name, "µs", higher_is_better=False),
                )
            )
    selected = [plan[k] for k in plan if k in only]
    for rep in range(reps):
        for (scenario, _, _, round_), (rate, cpu) in zip(selected, rows, strict=True):
            # Which side goes first alternates, so neither always meets a warmer broker.
            ours_rate, raw_rate, ours_cpu, raw_cpu = await round_(ours_first=rep % 2 == 1)
            rate.ours.append(ours_rate)
            rate.raw.append(raw_rate)
            cpu.ours.append(ours_cpu)
            cpu.raw.append(raw_cpu)
            print(
                f"rep {rep + 1}/{reps} {scenario}: ours {ours_rate:.0f}/s raw {raw_rate:.0f}/s",
                file=sys.stderr,
            )
    results = [sample for pair in rows for sample in pair]
    if results:
        report(results, json_path=json_path)
    if "rpc" in only:
        from bench import rpc

        print()
        await rpc.main(reps, 3000, json_path)
    if "memory" in only:
        from bench import memory

        print()
        await memory.main(json_path)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--json", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    configure("warning")
    asyncio.run(run(args.reps, only, args.json))


if __name__ == "__main__":
    main()
