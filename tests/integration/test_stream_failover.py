"""One reader per named stream consumer, on the real broker, across a kill -9.

Three ``burrowmq run`` processes of the same service consume one stream under one
consumer name while the test publishes into it. Only the holder of the consumer's lease
reads; kill -9 it and another takes over within seconds, resuming after the stored mark:
nothing is skipped, and the repeats are bounded by what the dead one settled after its
last commit plus the prefetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import aiormq
import pytest

from burrowmq.routing.stream import COMMIT_EVERY
from tests.conftest import Names
from tests.workers import BurrowmqProcess, stop_all

from .conftest import offsets, start_stream_worker, wait_for

pytestmark = pytest.mark.integration

PREFETCH = 256  # the worker's (tests/integration/stream_worker.py)


class _Publisher:
    """Publishes numbered messages into the stream, a batch every 20 ms, until stopped."""

    def __init__(self, url: str, stream: str) -> None:
        self.url, self.stream, self.sent = url, stream, 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        connection = await aiormq.connect(self.url)
        try:
            channel = await connection.channel()
            await channel.confirm_delivery()
            while not self._stop.is_set():
                batch = range(self.sent, self.sent + 50)
                await asyncio.gather(
                    *(
                        channel.basic_publish(
                            json.dumps({"n": n}).encode(), routing_key=self.stream
                        )
                        for n in batch
                    )
                )
                self.sent += len(batch)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.02)
        finally:
            await connection.close()

    def stop(self) -> None:
        self._stop.set()


class TestOneReaderFailover:
    """Three instances of one named consumer: one reads; kill -9 it, another takes over."""

    @pytest.mark.slow
    @pytest.mark.timeout(180)
    async def test_kill_the_reader(self, names: Names, broker_url: str, tmp_path: Path) -> None:
        """Only one instance reads; after a kill -9 another reads on within 5 s, nothing skipped."""
        stream, consumer = names.queue("events"), f"{names.prefix}.proj"
        for queue in (f"{consumer}.dlq", f"{stream}.{consumer}.offset"):
            names.add_queue(queue)
        names.add_queue(f"{stream}.{consumer}.lease")
        connection = await aiormq.connect(broker_url)
        channel = await connection.channel()
        await channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
        await connection.close()
        publisher = _Publisher(broker_url, stream)
        publishing = asyncio.ensure_future(publisher.run())
        records = [tmp_path / f"worker{i}.txt" for i in range(3)]
        workers: list[BurrowmqProcess] = []
        try:
            workers.append(start_stream_worker(broker_url, stream, consumer, records[0]))
            await wait_for(lambda: len(offsets(records[0])) > 0, 30)  # the first holds the lease
            workers += [start_stream_worker(broker_url, stream, consumer, r) for r in records[1:]]
            await asyncio.sleep(3.0)  # the others start, stand in line, and must not read
            assert offsets(records[1]) == [] and offsets(records[2]) == [], "a standby read"
            before = len(offsets(records[0]))
            await wait_for(lambda: len(offsets(records[0])) > before + 500, 30)
            workers[0].kill()
            killed = time.perf_counter()
            await wait_for(lambda: bool(offsets(records[1]) or offsets(records[2])), 5.0)
            takeover = time.perf_counter() - killed
            await asyncio.sleep(2.0)
            readers = [i for i in (1, 2) if offsets(records[i])]
            assert len(readers) == 1, "two instances read at once"
            publisher.stop()
            await publishing
            total = publisher.sent
            await wait_for(lambda: len(set().union(*(offsets(r) for r in records))) >= total, 60)
        finally:
            publisher.stop()
            with contextlib.suppress(Exception):
                await publishing
            stop_all(workers)
        runs = [offsets(r) for r in records]
        handled = sum(len(run) for run in runs)
        unique = set().union(*runs)
        repeats = handled - len(unique)
        missing = set(range(total)) - unique
        print(
            f"\nfailover: {total} published, runs handled {[len(run) for run in runs]}, "
            f"{len(missing)} skipped, {repeats} repeated, takeover {takeover:.2f}s after kill -9"
        )
        assert not missing
        assert repeats <= COMMIT_EVERY + 2 * PREFETCH
        assert takeover < 5.0
