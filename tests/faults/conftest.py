"""Fixtures for fault tests: one private RabbitMQ node per session, never the shared broker.

The node boots once (about 5-10 s) and serves every fault test; the restart test stops
and starts that same node, which keeps its data. Each test gets unique queue names,
deleted afterwards. Where ``CI=true``, a machine that cannot start nodes fails the tests
instead of skipping them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aio_pika
import pytest

from burrowmq import App, Router
from tests.conftest import IN_CI, Names
from tests.faults.node import RabbitNode, can_run_nodes


@pytest.fixture(scope="session")
def node() -> Iterator[RabbitNode]:
    """A private RabbitMQ node on free loopback ports, removed at the end of the session."""
    reason = can_run_nodes()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"fault tests cannot start a RabbitMQ node: {reason}")
        pytest.skip(reason)
    rabbit = RabbitNode()
    try:
        seconds = rabbit.start()
        print(f"\n[faults] private node {rabbit.name} on port {rabbit.port} up in {seconds:.1f}s")
        yield rabbit
    finally:
        rabbit.remove()


@pytest.fixture
def node_url(node: RabbitNode) -> str:
    """The private node's AMQP URL; the node is (re)started if a test left it down."""
    if not node.running:
        node.start()
    return node.url


@pytest.fixture
async def names(request: pytest.FixtureRequest, node_url: str) -> AsyncIterator[Names]:
    """Unique names for this test on the private node; deleted afterwards."""
    registry = Names(request.node.name)
    yield registry
    with contextlib.suppress(Exception):
        await registry.cleanup(node_url)


@pytest.fixture
async def make_app(node_url: str) -> AsyncIterator[Callable[..., App]]:
    """Build Apps on the private node; every one is stopped when the test ends."""
    apps: list[App] = []

    def factory(*routers: Router, **options: Any) -> App:
        options.setdefault("url", node_url)
        options.setdefault("shutdown_timeout", 10.0)
        app = App(list(routers), **options)
        apps.append(app)
        return app

    yield factory
    for app in reversed(apps):
        await app.stop()


@pytest.fixture
async def amqp(node_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A raw aio-pika channel on the private node, to look at it independently."""
    connection = await aio_pika.connect(node_url)
    channel = await connection.channel()
    yield channel
    with contextlib.suppress(Exception):
        await connection.close()


@pytest.fixture
def project_root() -> str:
    """The repository root (child processes run from it, to import ``tests.faults``)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
