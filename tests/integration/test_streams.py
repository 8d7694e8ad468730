"""Streams on the real broker: 100,000 messages, a named consumer stopped or killed mid-way.

Both variants print their figures (repeats, rates). The bound on repeats after a crash
is :mod:`burrowmq.routing.stream`'s: ``COMMIT_EVERY`` + prefetch, plus what was settled
while the last commit was on its way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiormq
import pytest

from burrowmq import App, Message, Router
from burrowmq.routing.stream import COMMIT_EVERY
from tests.conftest import Names

from .conftest import offsets, start_stream_worker, wait_for

pytestmark = pytest.mark.integration

TOTAL = 100_000
PREFETCH = 256


async def _fill(url: str, stream: str, total: int) -> float:
    """Declare ``stream`` and publish ``total`` confirmed messages; return the seconds."""
    started = time.perf_counter()
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
        for start in range(0, total, 2000):
            await asyncio.gather(
                *(
                    channel.basic_publish(json.dumps({"n": n}).encode(), routing_key=stream)
                    for n in range(start, min(start + 2000, total))
                )
            )
    finally:
        await connection.close()
    return time.perf_counter() - started


def _register(names: Names, stream: str, consumer: str) -> None:
    names.add_queue(f"{consumer}.dlq")
    names.add_queue(f"{stream}.{consumer}.offset")
    names.add_queue(f"{stream}.{consumer}.lease")


def _figures(label: str, runs: list[list[int]], seconds: float) -> int:
    """Print what each run handled, the repeats and the rate; return the repeats."""
    handled = sum(len(run) for run in runs)
    unique = set().union(*runs)
    missing = TOTAL - len(unique & set(range(TOTAL)))
    repeats = handled - len(unique)
    print(
        f"\n{label}: runs handled {[len(run) for run in runs]}, {handled} in all, "
        f"{missing} skipped, {repeats} repeated (bound {COMMIT_EVERY + PREFETCH} + in-flight "
        f"commit), {handled / seconds:,.0f} msg/s"
    )
    assert missing == 0
    return repeats


class TestNamedConsumerResume:
    """A named consumer of 100,000 messages resumes after its mark: nothing skipped."""

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    async def test_stop_and_restart(
        self, names: Names, broker_url: str, make_app: Callable[..., App]
    ) -> None:
        """Stopped at about 40,000 and restarted: every offset handled, no repeat."""
        stream, consumer = names.queue("events"), f"{names.prefix}.proj"
        _register(names, stream, consumer)
        filled = await _fill(broker_url, stream, TOTAL)
        print(f"\nfilled {TOTAL} in {filled:.1f}s")
        runs: list[list[int]] = [[], []]
        halfway, complete = asyncio.Event(), asyncio.Event()
        covered: set[int] = set()

        def build(run: list[int]) -> Router:
            router = Router()

            @router.stream(
                stream, consumer=consumer, offset="first", prefetch=PREFETCH, concurrency=16
            )
            async def project(event: dict[str, int], message: Message) -> None:
                assert message.offset is not None
                run.append(message.offset)
                covered.add(message.offset)
                if len(covered) >= 40_000:
                    halfway.set()
                if len(covered) == TOTAL:
                    complete.set()

            return router

        started = time.perf_counter()
        first = make_app(build(runs[0]))
        await first.start()
        await asyncio.wait_for(halfway.wait(), 120)
        await first.stop()
        second = make_app(build(runs[1]))
        await second.start()
        await asyncio.wait_for(complete.wait(), 120)
        seconds = time.perf_counter() - started
        await second.stop()
        repeats = _figures("stop/restart", runs, seconds)
        assert runs[1] and min(runs[1]) == max(runs[0]) + 1
        assert repeats == 0

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    async def test_kill_and_restart(self, names: Names, broker_url: str, tmp_path: Path) -> None:
        """Killed (-9) at about 40,000 and restarted: every offset handled, repeats bounded."""
        stream, consumer = names.queue("events"), f"{names.prefix}.proj"
        _register(names, stream, consumer)
        await _fill(broker_url, stream, TOTAL)
        records = [tmp_path / "run1.txt", tmp_path / "run2.txt"]

        started = time.perf_counter()
        worker = start_stream_worker(broker_url, stream, consumer, records[0])
        try:
            await wait_for(lambda: len(offsets(records[0])) >= 40_000, 120)
            worker.kill()
            worker = start_stream_worker(broker_url, stream, consumer, records[1])
            await wait_for(
                lambda: len(set(offsets(records[0])) | set(offsets(records[1]))) >= TOTAL,
                120,
            )
            seconds = time.perf_counter() - started
        finally:
            worker.stop()
        runs = [offsets(record) for record in records]
        repeats = _figures("kill -9/restart", runs, seconds)
        assert repeats <= COMMIT_EVERY + 2 * PREFETCH
