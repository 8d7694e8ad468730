"""A 3-node RabbitMQ 4 cluster: stopping the quorum queue's leader node loses nothing.

Three private RabbitMQ 4.0.5 nodes run in the chroot of ``scripts/rabbitmq4`` (built
first when missing; whatever ``BURROWMQ_TEST_NODES`` says), joined with ``join_cluster``.
A quorum work queue has a member on each; its leader's node is the first URL of both the
consumer and the publisher Apps, which are given all three. That node is stopped while
messages are published (with confirms) and consumed: a new leader is elected on another
node, both Apps reconnect to the next URL on their own, the consumer resumes, and every
confirmed message is handled. The nodes are removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aio_pika
import pytest
from pydantic import BaseModel

from burrowmq import App, Router
from tests.conftest import Names
from tests.faults.conftest import Say, require_nodes
from tests.faults.node import RABBITMQ4, RabbitNode, nodes_version
from tests.faults.workload import Tally, publish_all, wait_for

pytestmark = pytest.mark.faults

TOTAL = 5_000
STOP_AFTER = 1_200  # confirmed messages before the leader's node is stopped
LANES = 16  # concurrent publishes
PACE = 0.04  # seconds each lane waits after a confirm: ~400/s, so the stop lands mid-stream


class Job(BaseModel):
    n: int


@pytest.fixture(scope="module")
def node_flavour(say: Say) -> str:
    """This module always runs RabbitMQ 4 (it overrides the session's flavour line)."""
    require_nodes(say, RABBITMQ4)
    say(f"\n[cluster4] private nodes run RabbitMQ {nodes_version(RABBITMQ4)} (scripts/rabbitmq4)")
    return RABBITMQ4


@pytest.fixture(scope="module")
def cluster4(node_flavour: str) -> Iterator[list[RabbitNode]]:
    """Three RabbitMQ 4 nodes joined into one cluster; removed when the module ends."""
    nodes = [RabbitNode(flavour=node_flavour) for _ in range(3)]
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(len(nodes)) as pool:  # they boot side by side
            list(pool.map(lambda node: node.start(), nodes))
        booted = time.monotonic() - started
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].name)
            node.ctl("start_app")
            node.ctl("await_startup", "--timeout", "60", timeout=90)
        status = json.loads(nodes[0].ctl("cluster_status", "--formatter", "json"))
        running = set(status.get("running_nodes", []))
        assert running == {node.name for node in nodes}, status
        print(
            f"\n[cluster4] 3 RabbitMQ {nodes[0].version()} nodes booted in {booted:.1f}s, "
            f"joined in {time.monotonic() - started:.1f}s: {sorted(running)}"
        )
        yield nodes
    finally:
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda node: node.remove(), nodes))


def quorum_queue(node: RabbitNode, queue: str) -> dict[str, Any]:
    """The queue's type, leader, members and online members, as ``list_queues`` shows them."""
    rows = json.loads(
        node.ctl(
            "list_queues", "name", "type", "leader", "members", "online", "--formatter", "json"
        )
    )
    for row in rows:
        if row["name"] == queue:
            return dict(row)
    raise AssertionError(f"queue {queue} is not in the cluster: {rows}")


def port_closed(port: int) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:``port`` any more."""
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return False
    except OSError:
        return True


@contextlib.asynccontextmanager
async def declared(url: str, queue: str) -> AsyncIterator[None]:
    """The quorum queue, declared on ``url``'s node (its leader goes there: client-local)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        yield
    finally:
        await connection.close()


class TestQuorumLeaderLoss:
    @pytest.mark.timeout(180)
    async def test_leader_node_stopped_under_load_loses_no_confirmed_message(
        self, cluster4: list[RabbitNode]
    ) -> None:
        """The node holding the quorum queue's leader stops mid-stream: every confirmed message is handled, consumers move within 10 s."""
        names = Names("cluster4")
        queue = names.queue("jobs")
        by_name = {node.name: node for node in cluster4}
        async with declared(cluster4[0].url, queue):
            before = await asyncio.to_thread(quorum_queue, cluster4[0], queue)
        assert before["type"] == "quorum", before
        assert sorted(before["members"]) == sorted(by_name), before
        leader = by_name[before["leader"]]
        others = [node for node in cluster4 if node is not leader]
        urls = [leader.url, *(node.url for node in others)]

        tally = Tally(expect=TOTAL)
        handled_at: list[float] = []
        router = Router()

        @router.consume(
            queue,
            queue_options={"arguments": {"x-queue-type": "quorum"}},
            dead_letter=False,
            prefetch=64,
            concurrency=8,
        )
        async def work(job: Job) -> None:
            handled_at.append(time.monotonic())
            tally.add(job.n)

        consumer = App([router], url=urls, name="cluster4-consumer", shutdown_timeout=10)
        publisher = App(url=urls, name="cluster4-publisher", recovery_wait=30, shutdown_timeout=10)
        moments: dict[str, float] = {}
        stopping: list[asyncio.Task[None]] = []

        async def stop_leader() -> None:
            moments["stop"] = time.monotonic()
            stopped = asyncio.create_task(asyncio.to_thread(leader.stop))
            await wait_for(lambda: port_closed(leader.port), 60, "the leader's node to go down")
            moments["down"] = time.monotonic()
            await stopped
            moments["stopped"] = time.monotonic()

        confirms = 0

        async def on_confirmed(key: int) -> None:
            nonlocal confirms
            confirms += 1
            if confirms == STOP_AFTER:
                stopping.append(asyncio.create_task(stop_leader()))
            await asyncio.sleep(PACE)

        async def reconnected() -> None:
            if "stop" in moments and "ready" not in moments:  # after the stop: a reconnect
                moments["ready"] = time.monotonic()

        await consumer.start()
        consumer.transport.on_ready(reconnected)
        await publisher.start()
        first_node = consumer.transport.node or ""
        assert f":{leader.port} " in first_node, f"the consumer is not on the leader: {first_node}"
        try:
            started = time.monotonic()
            report = await publish_all(
                publisher,
                range(TOTAL),
                lambda n: Job(n=n),
                routing_key=queue,
                concurrency=LANES,
                on_confirmed=on_confirmed,
            )
            assert stopping, "the leader's node was never stopped"
            await stopping[0]
            confirmed = report.confirmed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.event.wait(), 60)
            missing = confirmed - set(tally.seen)
            after = await asyncio.to_thread(quorum_queue, others[0], queue)
            # Failover: from the last message handled on the lost connection to the first
            # one handled after the consumer reconnected to another node.
            ready = moments.get("ready", float("inf"))
            last_before = max((t for t in handled_at if t < ready), default=None)
            first_after = min((t for t in handled_at if t >= ready), default=None)
            failover = (
                first_after - last_before
                if first_after is not None and last_before is not None
                else None
            )
            print(
                f"\n[cluster4] leader {leader.name} of quorum queue {queue} stopped after "
                f"{STOP_AFTER} confirms (stop command {moments['stopped'] - moments['stop']:.1f}s, "
                f"node down {moments['down'] - moments['stop']:.1f}s after it); new leader "
                f"{after['leader']}, online {sorted(after['online'])}; published {TOTAL}, "
                f"confirmed {len(confirmed)}, resent {report.raised} {dict(report.errors)}, "
                f"handled {tally.unique}, duplicates {tally.duplicates}, missing {len(missing)}; "
                f"failover (last message handled on the lost node -> next one handled on "
                f"another) {failover if failover is not None else float('nan'):.2f}s, the "
                f"consumer reconnected {ready - moments['down']:+.2f}s after the port closed; "
                f"{time.monotonic() - started:.1f}s in all"
            )
            assert not missing, f"confirmed but never handled: {sorted(missing)[:10]}"
            assert len(confirmed) == TOTAL
            assert after["leader"] != leader.name and after["leader"] in by_name, after
            assert failover is not None, "no message was handled after the consumer reconnected"
            assert failover < 10, f"the consumers moved {failover:.1f}s after the node went down"
            assert consumer.transport.is_connected
            node = consumer.transport.node or ""
            assert f":{leader.port} " not in node, f"still on the stopped node: {node}"
        finally:
            await publisher.stop()
            await consumer.stop()
            for task in stopping:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
