"""Consumer processes killed with SIGKILL: nothing is lost, crash loops end in the DLQ."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from burrowmq import Retry, Router
from tests.faults.workload import Tally, drain, publish_all, queue_depth, wait_for
from tests.workers import BurrowmqProcess, recorded, start_worker

pytestmark = pytest.mark.faults


class Job(BaseModel):
    n: int
    crash: bool = False


def _start(url: str, queue: str, record: Path, **env: str) -> BurrowmqProcess:
    """``tests/faults/worker.py`` consuming ``queue``, recording each job it handled in ``record``."""
    return start_worker(
        "tests.faults.worker:app",
        url,
        record.with_suffix(f".{time.monotonic_ns()}.log"),
        BURROWMQ_FAULT_QUEUE=queue,
        BURROWMQ_FAULT_RECORD=str(record),
        **env,
    )


def _recorded(record: Path) -> list[int]:
    return [int(line) for line in recorded(record)]


async def _wait_queue_exists(amqp_url: str, queue: str, timeout: float) -> None:
    import aio_pika

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    connection = await aio_pika.connect(amqp_url)
    try:
        while True:
            channel = await connection.channel()
            try:
                await channel.declare_queue(queue, passive=True)
                return
            except Exception:
                if loop.time() > deadline:
                    pytest.fail(f"queue {queue} was not declared within {timeout}s")
                await asyncio.sleep(0.1)
    finally:
        await connection.close()


class TestConsumerKilled:
    @pytest.mark.timeout(120)
    async def test_kill_9_mid_stream_loses_nothing(
        self, make_app, names, amqp, node_url, tmp_path
    ) -> None:
        """A consumer process killed with SIGKILL amid 5,000 messages loses none: a second consumer drains the rest."""
        total = 5_000
        queue = names.queue("jobs")
        record = tmp_path / "first.txt"
        worker = _start(node_url, queue, record, BURROWMQ_FAULT_DELAY="0.004")
        try:
            await _wait_queue_exists(node_url, queue, 30)
            publisher = make_app(name="publisher")
            await publisher.start()
            started = time.monotonic()
            report = await publish_all(
                publisher, range(total), lambda n: Job(n=n), routing_key=queue
            )
            assert len(report.confirmed) == total
            await wait_for(lambda: len(_recorded(record)) >= 1_500, 60, "1,500 handled")
            worker.kill()
        finally:
            worker.kill()
        first = _recorded(record)
        left_in_queue = await queue_depth(amqp, queue)
        tally = Tally(expect=0)
        for n in first:
            tally.add(n)
        second_seen: list[int] = []
        router = Router()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=1))
        async def drain_jobs(job: Job) -> None:
            second_seen.append(job.n)
            tally.add(job.n)

        second = make_app(router, name="second")
        async with second:
            for _ in range(600):
                if tally.unique >= total:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # acks of the last handled messages go out
        elapsed = time.monotonic() - started
        dead = [Job.model_validate_json(m.body).n for m in await drain(amqp, f"{queue}.dlq")]
        handled = set(tally.seen)
        lost = set(range(total)) - handled - set(dead)
        print(
            f"\n[kill -9] published {report.attempts}, confirmed {len(report.confirmed)}; "
            f"first consumer handled {len(first)} before SIGKILL ({left_in_queue} left ready); "
            f"second consumer handled {len(second_seen)}; unique handled {len(handled)}; "
            f"duplicates {tally.duplicates} (handled but not acked before the kill); "
            f"DLQ {len(dead)}; lost {len(lost)}; {elapsed:.1f}s"
        )
        assert not lost, f"lost {len(lost)} messages, e.g. {sorted(lost)[:10]}"
        assert not dead
        assert await queue_depth(amqp, queue) == 0

    @pytest.mark.timeout(120)
    async def test_message_that_kills_the_worker_ends_in_the_dlq(
        self, make_app, names, amqp, node_url, tmp_path
    ) -> None:
        """A message that kills its consumer process each time is dead-lettered after max_redeliveries, and the consumer then keeps working."""
        limit = 2
        queue = names.queue("crashy")
        record = tmp_path / "crashy.txt"
        env = {"BURROWMQ_FAULT_MAX_REDELIVERIES": str(limit)}
        publisher = make_app(name="publisher")
        started = time.monotonic()
        worker = _start(node_url, queue, record, **env)
        deaths = 0
        try:
            await _wait_queue_exists(node_url, queue, 30)
            await publisher.start()
            for n in range(10):
                await publisher.publish("", Job(n=n), routing_key=queue)
            await wait_for(lambda: len(_recorded(record)) >= 10, 30, "the first good jobs")
            await publisher.publish("", Job(n=999, crash=True), routing_key=queue)
            while True:
                code = await worker.exited(30)
                assert code == -signal.SIGKILL
                deaths += 1
                assert deaths <= limit + 1, "the crash loop did not stop"
                worker = _start(node_url, queue, record, **env)
                if deaths == limit + 1:
                    break
            for _ in range(300):
                if await queue_depth(amqp, f"{queue}.dlq"):
                    break
                assert worker.running(), "the worker died once more"
                await asyncio.sleep(0.05)
            for n in range(10, 20):
                await publisher.publish("", Job(n=n), routing_key=queue)
            await wait_for(lambda: len(set(_recorded(record))) >= 20, 30, "the later good jobs")
            assert worker.running()
        finally:
            worker.stop()
        dead = await drain(amqp, f"{queue}.dlq")
        assert len(dead) == 1, [
            (Job.model_validate_json(m.body).n, m.headers.get("x-exception-message")) for m in dead
        ]
        headers = dead[0].headers
        assert Job.model_validate_json(dead[0].body).n == 999
        assert headers["x-exception-type"] == "TooManyRedeliveries"
        assert "redelivered 3 times" in str(headers["x-exception-message"])
        assert headers["x-original-queue"] == queue
        assert set(_recorded(record)) == set(range(20))
        print(
            f"\n[poison crash] worker processes killed by the message: {deaths}; "
            f"then dead-lettered: {headers['x-exception-type']}: "
            f"{headers['x-exception-message']}; good jobs handled {len(set(_recorded(record)))}/20; "
            f"{time.monotonic() - started:.1f}s"
        )
