"""Connection faults under load: forced disconnects and a node restart lose no confirmed message."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aio_pika
import pytest
from pydantic import BaseModel

from burrowmq import App, ConnectionLost, Message, Retry, Router
from tests.faults.node import RabbitNode
from tests.faults.workload import Tally, drain, publish_all, queue_depth, wait_for

pytestmark = pytest.mark.faults

TOTAL = 10_000


class Job(BaseModel):
    n: int


async def _workload(
    make_app: Callable[..., App],
    queue: str,
    url: str,
    *,
    label: str,
    fault: Callable[[], None],
    fault_at: tuple[int, ...],
    total: int = TOTAL,
    concurrency: int = 64,
) -> None:
    """Publish and consume ``total`` messages, ``concurrency`` publishes at a time, running
    ``fault`` (in a thread) as confirms pass ``fault_at``."""
    tally = Tally(expect=total)
    router = Router()

    @router.consume(queue, queue_options={}, retry=Retry(attempts=1), prefetch=64, concurrency=16)
    async def handle(job: Job) -> None:
        tally.add(job.n)

    consumer = make_app(router, name=f"{label}-consumer")
    publisher = make_app(name=f"{label}-publisher")
    await consumer.start()
    await publisher.start()
    confirmed = 0
    marks = list(fault_at)
    faults_done: list[float] = []
    fault_tasks: list[asyncio.Task[None]] = []

    async def run_fault() -> None:
        began = time.monotonic()
        await asyncio.to_thread(fault)
        faults_done.append(time.monotonic() - began)

    async def on_confirmed(_: int) -> None:
        nonlocal confirmed
        confirmed += 1
        if marks and confirmed >= marks[0]:
            marks.pop(0)
            fault_tasks.append(asyncio.create_task(run_fault()))

    started = time.monotonic()
    report = await publish_all(
        publisher,
        range(total),
        lambda n: Job(n=n),
        routing_key=queue,
        concurrency=concurrency,
        on_confirmed=on_confirmed,
    )
    await asyncio.gather(*fault_tasks)
    published = time.monotonic() - started
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.event.wait(), 120)
    await asyncio.sleep(0.5)  # let the last acks out before the consumer stops
    handled_in = time.monotonic() - started
    # Back-off with jitter may still be waiting out the last fault's reconnect delay: the
    # consumer must be connected again within a bound, not at this very moment.
    reconnected_in = await wait_for(
        lambda: consumer.transport.is_connected, 15, "the consumer's reconnection"
    )
    consumer_connected = consumer.transport.is_connected
    await consumer.stop()
    await publisher.stop()
    connection = await aio_pika.connect(url)  # a fresh look: a restart closed older ones
    try:
        channel = await connection.channel()
        dead = await drain(channel, f"{queue}.dlq")
        remaining = await queue_depth(channel, queue)
    finally:
        await connection.close()
    missing = report.confirmed - set(tally.seen)
    print(
        f"\n[{label}] faults injected {len(faults_done)} "
        f"({', '.join(f'{s:.1f}s' for s in faults_done)}); publish attempts {report.attempts}, "
        f"confirmed {len(report.confirmed)}/{total}, raised {report.raised} "
        f"({dict(report.errors)}) and were resent; handled {tally.unique} unique, "
        f"duplicates {tally.duplicates}; DLQ {len(dead)}; left in queue {remaining}; "
        f"missing confirmed {len(missing)}; published in {published:.1f}s, "
        f"all handled after {handled_in:.1f}s; consumer connected {reconnected_in:.1f}s after that"
    )
    assert len(faults_done) == len(fault_at)
    assert len(report.confirmed) == total
    assert not missing, f"confirmed but never handled: {sorted(missing)[:20]}"
    assert not dead
    assert remaining == 0
    assert consumer_connected


class TestRecovery:
    @pytest.mark.timeout(180)
    async def test_close_all_connections_under_load_loses_no_confirmed_message(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """Forced close of every client connection, twice, while 10,000 messages flow: all confirmed ones are handled."""
        await _workload(
            make_app,
            names.queue("load"),
            node.url,
            label="close_all_connections",
            fault=node.close_all_connections,
            fault_at=(2_500, 6_000),
        )

    @pytest.mark.timeout(120)
    async def test_close_all_connections_publishing_one_at_a_time_loses_nothing(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """One publish at a time (written from the publishing task, its ack settled as
        read): a forced close while it awaits its confirm fails it, and it is resent."""
        await _workload(
            make_app,
            names.queue("lone"),
            node.url,
            label="close_all_connections_one_at_a_time",
            fault=node.close_all_connections,
            fault_at=(500, 1_200),
            total=1_500,
            concurrency=1,
        )

    @pytest.mark.timeout(240)
    async def test_node_restart_under_load_loses_no_confirmed_message(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """A broker node stop and start while 10,000 messages flow through a durable quorum queue: all confirmed ones are handled."""
        await _workload(
            make_app,
            names.queue("load"),
            node.url,
            label="node restart",
            fault=node.restart,
            fault_at=(4_000,),
        )


def _on_reconnect(app: App) -> asyncio.Event:
    """An event set when the app's transport has reconnected (its ready callbacks ran)."""
    event = asyncio.Event()

    async def ready() -> None:
        event.set()

    app.transport.on_ready(ready)
    return event


class TestRecoveryPaths:
    @pytest.mark.timeout(90)
    async def test_publish_while_the_node_is_down_waits_for_the_bound_then_raises(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """With the node down, app.publish waits recovery_wait and raises ConnectionLost; once it is back, the app resumes on its own."""
        queue = names.queue("bound")
        seen: list[int] = []
        router = Router()

        @router.consume(queue, queue_options={})
        async def take(job: Job) -> None:
            seen.append(job.n)

        app = make_app(router, name="bounded", recovery_wait=2.0)
        await app.start()
        await app.publish("", Job(n=1), routing_key=queue)
        await wait_for(lambda: seen == [1], 10, "the first message")
        await asyncio.to_thread(node.stop)
        began = time.monotonic()
        with pytest.raises(ConnectionLost):
            await app.publish("", Job(n=2), routing_key=queue)
        waited = time.monotonic() - began
        boot = await asyncio.to_thread(node.start)
        recovered = await wait_for(lambda: app.transport.is_connected, 30, "recovery")
        await app.publish("", Job(n=3), routing_key=queue)
        await wait_for(lambda: 3 in seen, 15, "a message after the restart")
        print(
            f"\n[bounded publish] node down: publish raised ConnectionLost after {waited:.2f}s "
            f"(recovery_wait=2); node back in {boot:.1f}s, app reconnected {recovered:.1f}s "
            f"later by itself and consumed again"
        )
        assert 1.9 <= waited < 5.0
        assert seen == [1, 3]

    @pytest.mark.timeout(60)
    async def test_handlers_finishing_after_a_disconnect_never_ack_on_the_new_channel(
        self, make_app, names, node: RabbitNode, amqp
    ) -> None:
        """Deliveries of the lost channel settle nowhere: the new channel gets no stale tag and keeps consuming."""
        queue = names.queue("stale")
        release = asyncio.Event()
        seen: list[tuple[int, bool]] = []
        router = Router()

        @router.consume(queue, queue_options={}, prefetch=10, concurrency=5)
        async def hold(job: Job, message: Message) -> None:
            seen.append((job.n, message.redelivered))
            if job.n < 5:
                await release.wait()

        async with make_app(router, name="stale") as app:
            for n in range(5):
                await app.publish("", Job(n=n), routing_key=queue)
            await wait_for(lambda: len(seen) >= 5, 10, "five handlers in flight")
            reconnected = _on_reconnect(app)
            await asyncio.to_thread(node.close_all_connections)
            await asyncio.wait_for(reconnected.wait(), 30)
            release.set()  # the five old handlers finish and try to ack their old tags
            for n in range(5, 25):
                await app.publish("", Job(n=n), routing_key=queue)
            await wait_for(lambda: {n for n, _ in seen} >= set(range(25)), 15, "every message")
            await asyncio.sleep(0.5)
            depth = node.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged")
        row = next(line.split() for line in depth.splitlines() if line.startswith(queue + "\t"))
        redelivered = sorted(n for n, again in seen if again)
        log = node.log_tail(400)
        print(
            f"\n[stale tags] 5 handlers held across a forced disconnect; redelivered on the new "
            f"channel: {redelivered}; handled {len(seen)} times for 25 messages; queue ready/"
            f"unacked {row[1]}/{row[2]}; 'unknown delivery tag' in node log: "
            f"{'unknown delivery tag' in log}"
        )
        assert redelivered == [0, 1, 2, 3, 4]
        assert row[1:] == ["0", "0"]
        assert "unknown delivery tag" not in log
        assert "PRECONDITION_FAILED" not in log

    @pytest.mark.timeout(60)
    async def test_exclusive_queue_is_redeclared_and_consumed_after_reconnect(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """A per-instance fanout queue vanishes with its connection and comes back, bound and consumed, after recovery."""
        exchange = names.exchange("broadcast")
        got: list[int] = []
        router = Router()

        @router.fanout(exchange)
        async def note(job: Job) -> None:
            got.append(job.n)

        listener = make_app(router, name="listener")
        sender = make_app(name="sender")
        await listener.start()
        await sender.start()
        await sender.publish(exchange, Job(n=1))
        await wait_for(lambda: got == [1], 10, "the first broadcast")
        reconnected = _on_reconnect(listener), _on_reconnect(sender)
        await asyncio.to_thread(node.close_all_connections)
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in reconnected)), 30)
        await sender.publish(exchange, Job(n=2))
        await wait_for(lambda: got == [1, 2], 10, "a broadcast after recovery")
        print("\n[exclusive queue] re-declared, re-bound and consumed after a forced disconnect")
