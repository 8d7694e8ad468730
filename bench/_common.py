"""Shared pieces of the benchmarks: broker URL, prefill, timing, statistics, output."""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from pydantic import BaseModel

URL = os.environ.get("BURROWMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Item(BaseModel):
    """One line of an :class:`Order`: the nested list every consumer validates."""

    sku: str
    quantity: int
    price: float


class Order(BaseModel):
    """The payload every scenario validates (pika, aio-pika, FastStream and burrowmq alike)."""

    order_id: str
    customer: str
    total: float
    items: list[Item]


def make_order(n: int) -> Order:
    """The ``n``-th order: three items, about 200 bytes as JSON."""
    return Order(
        order_id=f"o-{n}",
        customer=f"c-{n % 97}",
        total=n * 0.5,
        items=[
            Item(sku=f"sku-{n % 13}-{k}", quantity=k + 1, price=1.25 * (k + 1)) for k in range(3)
        ],
    )


def payload(n: int) -> bytes:
    """A realistic small JSON body (about 200 bytes)."""
    return make_order(n).model_dump_json().encode()


def unique(name: str) -> str:
    """A unique entity name for one run."""
    return f"bench.{name}.{uuid.uuid4().hex[:8]}"


async def prefill(
    queue: str,
    count: int,
    *,
    queue_type: str = "classic",
    headers: Callable[[int], dict[str, Any]] | None = None,
) -> None:
    """Declare a durable queue and fill it with ``count`` persistent messages (confirmed),
    message ``n`` with the AMQP headers ``headers(n)`` if given."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": queue_type})
        window = 1000
        for start in range(0, count, window):
            pending = [
                channel.default_exchange.publish(
                    aio_pika.Message(
                        payload(n),
                        delivery_mode=2,
                        content_type="application/json",
                        headers=headers(n) if headers is not None else None,
                    ),
                    routing_key=queue,
                )
                for n in range(start, min(count, start + window))
            ]
            for item in pending:
                await item


async def declare(queue: str) -> None:
    """Declare an empty durable classic queue."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "classic"})


async def delete_queues(*names: str, exchanges: Sequence[str] = ()) -> None:
    """Delete queues (and their dead-letter companions) and exchanges after a run."""
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        for name in names:
            for suffix in ("", ".dlq"):
                try:
                    await channel.queue_delete(name + suffix)
                except Exception:
                    channel = await connection.channel()
            try:
                await channel.exchange_delete(name + ".dlx")
            except Exception:
                channel = await connection.channel()
        for exchange in exchanges:
            try:
                await channel.exchange_delete(exchange)
            except Exception:
                channel = await connection.channel()


class Timer:
    """Wall-clock and CPU time of a block."""

    def __enter__(self) -> Timer:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


@dataclass
class Samples:
    """Repeated measurements of one metric for burrowmq and raw aio-pika."""

    scenario: str
    metric: str
    unit: str
    higher_is_better: bool
    ours: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ours, raw = statistics.median(self.ours), statistics.median(self.raw)
        ratios = [o / r for o, r in zip(self.ours, self.raw, strict=False) if r]
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "unit": self.unit,
            "burrowmq_median": round(ours, 3),
            "raw_median": round(raw, 3),
            "ratio": round(ours / raw, 3) if raw else None,
            "ratio_min": round(min(ratios), 3) if ratios else None,
            "ratio_max": round(max(ratios), 3) if ratios else None,
            "higher_is_better": self.higher_is_better,
            "runs": len(self.ours),
            "burrowmq": [round(x, 3) for x in self.ours],
            "raw": [round(x, 3) for x in self.raw],
        }


def report(results: Sequence[Samples], *, json_path: str | None = None) -> None:
    """Print JSON lines and a short table; optionally append the JSON lines to a file."""
    lines = [json.dumps(s.summary()) for s in results]
    for line in lines:
        print(line)
    if json_path:
        with open(json_path, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    print()
    print(f"{'scenario':<22}{'metric':<18}{'burrowmq':>12}{'raw':>12}{'ratio':>8}  (min-max)")
    for s in results:
        row = s.summary()
        print(
            f"{row['scenario']:<22}{row['metric']:<18}{row['burrowmq_median']:>12}"
            f"{row['raw_median']:>12}{row['ratio']:>8}  ({row['ratio_min']}-{row['ratio_max']})"
        )
