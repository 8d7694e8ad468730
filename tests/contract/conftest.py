"""The contract suite's fixture: one backend per transport, the memory one and RabbitMQ.

A contract test takes ``backend`` and runs twice: on a fresh in-memory broker and on the
real RabbitMQ (with the unique, cleaned-up names of ``tests/conftest.py``). It builds
apps with ``backend.app(...)`` and looks at queues through ``backend.transport``, a
plain :class:`~burrowmq.framework.transport.Transport` of its own, so the same
assertions hold for both.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from burrowmq import App, Router
from burrowmq.amqp import AmqpTransport
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.memory.transport import MemoryTransport
from tests.conftest import Names


class Backend:
    """Apps and a transport on one backend, with unique names; apps stop at teardown."""

    def __init__(self, kind: str, url: str, names: Names, transport: Transport) -> None:
        self.kind = kind
        self.url = url
        self.names = names
        self.transport = transport
        self._apps: list[App] = []

    def app(self, *routers: Router, **options: Any) -> App:
        """An app on this backend (stopped when the test ends)."""
        options.setdefault("url", self.url)
        options.setdefault("shutdown_timeout", 5.0)
        # Tests allow more than the default 5 s to connect: a broker busy with the
        # suite's churn must not fail a test on the handshake alone.
        options.setdefault("connect_timeout", 15.0)
        app = App(list(routers), **options)
        self._apps.append(app)
        return app

    async def take(self, queue: str, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Consume and ack ``count`` messages from ``queue``; fail after ``timeout``."""
        got: asyncio.Queue[Delivery] = asyncio.Queue()
        subscription = await self.transport.consume(queue, got.put_nowait, prefetch=count)
        taken: list[Delivery] = []
        try:
            async with asyncio.timeout(timeout):
                while len(taken) < count:
                    delivery = await got.get()
                    await delivery.ack()
                    taken.append(delivery)
        finally:
            await subscription.close()
        return taken

    async def close(self) -> None:
        for app in reversed(self._apps):
            await app.stop()
        await self.transport.close()


# BURROWMQ_TEST_BACKENDS=amqp runs the RabbitMQ half only: CI's second broker (RabbitMQ
# 4) has nothing to add to the memory half, which it would only repeat.
BACKENDS = [
    kind
    for kind in os.environ.get("BURROWMQ_TEST_BACKENDS", "memory,amqp").split(",")
    if kind in ("memory", "amqp")
]


OWN_VHOST = "own_vhost"
"""The marker of a contract test whose RabbitMQ half runs in a fresh vhost of its own.

For a test whose retries wait past ``broker_delay_threshold``: the App then declares the
broker's delay ladder (:mod:`burrowmq.routing.delay`), about 30 ``burrowmq.delay.*``
queues and exchanges, shared and never deleted, which would otherwise stay in the shared
broker's vhost. The vhost, ladder and all, is deleted when the test ends.
"""


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest) -> tuple[str, str, Names]:
    """Which backend, its URL and the test's unique names (RabbitMQ's are cleaned up)."""
    if request.param == "memory":
        return "memory", f"memory://contract-{uuid.uuid4().hex[:10]}", Names(request.node.name)
    # Resolved here, in a plain fixture, since async fixtures cannot request others lazily.
    if request.node.get_closest_marker(OWN_VHOST):
        # Deleting the vhost deletes every name in it: no names to clean up one by one.
        return "amqp", request.getfixturevalue("fresh_vhost"), Names(request.node.name)
    return "amqp", request.getfixturevalue("broker_url"), request.getfixturevalue("names")


@pytest.fixture
async def backend(target: tuple[str, str, Names]) -> AsyncIterator[Backend]:
    """The memory transport, then the real RabbitMQ (skipped, or failed in CI, without one)."""
    kind, url, names = target
    transport: Transport
    if kind == "memory":
        # This connection also keeps the named broker alive between the test's apps.
        transport = MemoryTransport.shared(url)
    else:
        # 15 s, as the apps get: see Backend.app.
        transport = AmqpTransport([url], connection_name="contract-tests", connect_timeout=15.0)
    await transport.connect()
    result = Backend(kind, url, names, transport)
    yield result
    await result.close()
