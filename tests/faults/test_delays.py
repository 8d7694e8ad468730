"""A delayed message survives a restart of its node and still arrives on time."""

from __future__ import annotations

import asyncio
import time

import pytest

from burrowmq import Message, Router
from tests.faults.node import RabbitNode

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(240)]


class TestDelayAcrossRestart:
    async def test_65_second_delay_across_a_node_restart(
        self, node: RabbitNode, node_url: str, make_app, names, say
    ) -> None:
        """A 65 s delay published before a node stop and start arrives within a second of due."""
        queue = names.queue("delayed")
        arrivals: list[float] = []
        router = Router()

        @router.consume(queue, queue_options={"type": "quorum"})
        async def receive(body: dict, message: Message) -> None:
            arrivals.append(time.time())

        app = make_app(router)
        await app.start()
        await app.publish("", {"warm": True}, routing_key=queue, delay=0)  # (no delay: direct)
        await app.publish("", {"n": 0}, routing_key=names.queue("nowhere"), delay=7200)
        sent = time.time()
        await app.publish("", {"n": 1}, routing_key=queue, delay=65)
        await asyncio.sleep(5)
        down = time.time()
        boot = await asyncio.to_thread(node.restart)
        say(f"\n[delays] node restarted at +{down - sent:.1f}s, up after {boot:.1f}s")
        deadline = time.monotonic() + 90
        while len(arrivals) < 2:
            assert time.monotonic() < deadline, "the delayed message did not arrive"
            await asyncio.sleep(0.05)
        error = arrivals[1] - sent - 65
        say(f"[delays] 65 s delay across the restart arrived {error:+.3f}s from due")
        assert -0.6 < error < 1.0
