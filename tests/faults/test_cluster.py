"""A 3-node cluster of private nodes: losing the node an app is connected to loses nothing.

The app is given every node's URL; it connects to the first. That node is stopped while
messages flow through a quorum queue replicated on all three: the app reconnects to the
next URL on its own, re-declares, resumes consuming, and every confirmed message is
handled. The nodes are the test's own (names, ports, data folders), never the shared
broker, and are removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from burrowmq import App, ConnectionLost, PublishError, Router
from tests.conftest import IN_CI
from tests.faults.node import RabbitNode, can_run_nodes

pytestmark = pytest.mark.faults


class Job(BaseModel):
    n: int


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RabbitNode]]:
    """Three private nodes joined into one cluster; removed when the module ends."""
    reason = can_run_nodes()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"cluster tests cannot start RabbitMQ nodes: {reason}")
        pytest.skip(reason)
    nodes = [RabbitNode() for _ in range(3)]
    try:
        started = time.monotonic()
        for node in nodes:
            node.start()
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", nodes[0].name)
            node.ctl("start_app")
        status = nodes[0].ctl("cluster_status", "--formatter", "json")
        assert all(node.name in status for node in nodes), status
        print(f"\n[cluster] 3 nodes up and joined in {time.monotonic() - started:.1f}s")
        yield nodes
    finally:
        for node in reversed(nodes):
            node.remove()


class TestNodeLoss:
    @pytest.mark.timeout(240)
    async def test_app_fails_over_to_the_next_node_and_loses_nothing(
        self, cluster: list[RabbitNode]
    ) -> None:
        """Stopping the node the consumer is connected to: it moves to the next URL, every confirmed message is handled."""
        first, second, third = cluster
        total = 3000
        handled: dict[int, int] = {}
        all_handled = asyncio.Event()
        router = Router()

        @router.direct("jobs", "job", queue="cluster.jobs", prefetch=64, concurrency=8)
        async def work(job: Job) -> None:
            handled[job.n] = handled.get(job.n, 0) + 1
            if len(handled) == total:
                all_handled.set()

        consumer = App([router], url=[first.url, second.url, third.url], name="consumer")
        publisher = App(url=[second.url, third.url], name="publisher", recovery_wait=30)
        confirmed: set[int] = set()
        resent = 0
        await consumer.start()
        await publisher.start()
        try:
            stopped_at = None
            for n in range(total):
                if n == total // 3:
                    # The consumer's node goes away mid-stream (the publisher is elsewhere).
                    stopped_at = time.monotonic()
                    await asyncio.to_thread(first.stop)
                while True:
                    try:
                        await publisher.publish("jobs", Job(n=n), routing_key="job")
                        confirmed.add(n)
                        break
                    except (ConnectionLost, PublishError):
                        resent += 1  # not confirmed: the caller decides, and resends
                        await asyncio.sleep(0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_handled.wait(), 90)
            missing = confirmed - set(handled)
            duplicates = sum(count - 1 for count in handled.values())
            print(
                f"\n[cluster] node {first.name} stopped after {total // 3} publishes; "
                f"consumer recovered on the next URL; published {total}, confirmed "
                f"{len(confirmed)}, resent {resent}, handled {len(handled)}, duplicates "
                f"{duplicates}, missing {len(missing)}; "
                f"{time.monotonic() - (stopped_at or time.monotonic()):.1f}s after the stop"
            )
            assert not missing, f"confirmed but never handled: {sorted(missing)[:10]}"
            assert len(confirmed) == total
            assert consumer.transport.is_connected
            node = getattr(consumer.transport, "node", "")
            assert f":{first.port} " not in node, f"still on the stopped node: {node}"
        finally:
            await publisher.stop()
            await consumer.stop()
            if not first.running:
                await asyncio.to_thread(first.start)
