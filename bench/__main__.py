"""Run the benchmarks: pika, aio-pika, FastStream and burrowmq side by side, in one run.

Usage: ``python -m bench [--quick] [--reps 5] [--only consume,publish,batch,rpc,fanout,
stream, memory] [--clients pika,aiopika,faststream,burrowmq[,burrowmq-uvloop]] [--messages N]
[--json FILE]``.

consume, publish, batch and rpc run each client in its own fresh process, the clients
rotated over the repetitions, and print a table of medians per client with the ratios
burrowmq/pika and burrowmq/best aio-pika (median, and min-max over the repetitions), and
one JSON line per metric. fanout and stream are the older in-process comparisons of
burrowmq with hand-written aio-pika (stream: a stream read by a named consumer); memory
samples burrowmq's RSS over ``--messages`` consumed and then published. ``--quick``
takes small counts and one repetition, for development.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from importlib.util import find_spec

from bench import _runner
from bench._common import URL
from bench._proc import broker_pid

SCENARIOS = (*_runner.SCENARIOS, "fanout", "stream", "memory")
DEFAULT = ("consume", "publish", "batch", "rpc", "memory")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 5, 1 with --quick)")
    parser.add_argument("--only", default=",".join(DEFAULT), help=f"from {', '.join(SCENARIOS)}")
    parser.add_argument("--clients", default=",".join(_runner.CLIENTS))
    parser.add_argument("--quick", action="store_true", help="small counts, one repetition")
    parser.add_argument(
        "--messages", type=int, help="memory: messages consumed and published (default 100,000)"
    )
    parser.add_argument("--json", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if unknown := set(only) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    if unknown := set(clients) - set(_runner.ALL):
        parser.error(f"unknown clients {sorted(unknown)}; choose from {_runner.ALL}")
    needed = {"pika": "pika", "faststream": "faststream", "burrowmq-uvloop": "uvloop"}
    missing = [needed[c] for c in needed if c in clients and not find_spec(needed[c])]
    if missing:
        parser.error(
            f"{', '.join(missing)} not installed: pip install -e '.[bench]', "
            f"or leave them out with --clients"
        )
    reps = args.reps or (1 if args.quick else 5)
    from burrowmq.framework.log import configure

    configure("warning")
    broker = broker_pid(URL)
    print(f"broker pid {broker} (listening on {URL.rsplit('@', 1)[-1]})")
    keys = [k for k in _runner.SCENARIOS if k in only]
    if keys:
        rows = _runner.run(keys, clients, reps=reps, quick=args.quick, broker=broker)
        lines = [json.dumps(row.summary(), ensure_ascii=False) for row in rows]
        print("\n".join(lines))
        if args.json:
            with open(args.json, "a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
        print()
        print(_runner.table(rows))
    if "fanout" in only:
        from bench import fanout

        print()
        asyncio.run(fanout.main(reps, args.json))
    if "stream" in only:
        from bench import stream

        print()
        asyncio.run(stream.main(reps, args.json))
    if "memory" in only:
        from bench import memory

        print()
        count = args.messages or (10_000 if args.quick else memory.COUNT)
        asyncio.run(memory.main(args.json, count=count))


if __name__ == "__main__":
    main()
