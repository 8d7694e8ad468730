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

import aio_pika
import pytest

from burrowmq import App
from tests.conftest import IN_CI, Names, app_factory, raw_channel
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
async def make_app(node_url: str, names: Names) -> AsyncIterator[Callable[..., App]]:
    """Build Apps on the private node; every one is stopped when the test ends.

    It asks for ``names`` so that the apps stop before the test's queues are deleted.
    """
    async with app_factory(node_url) as factory:
        yield factory


@pytest.fixture
async def amqp(node_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A raw aio-pika channel on the private node, to look at it independently."""
    async with raw_channel(node_url) as channel:
        yield channel


@pytest.fixture
def project_root() -> str:
    """The repository root (child processes run from it, to import ``tests.faults``)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


CONSUMER_TIMEOUT_MS = 3000
"""The ``consumer_timeout`` of :func:`consumer_timeout_node`."""


@pytest.fixture(scope="session")
def consumer_timeout_node() -> Iterator[RabbitNode]:
    """A second private node whose channels time out unacked deliveries after 3 s.

    RabbitMQ checks ``consumer_timeout`` on each channel's tick, every
    ``channel_tick_interval`` ms (60,000 by default on 3.10, so a 3 s timeout would
    strike up to a minute late); the tick is set to 1 s here in ``advanced.config``,
    for which ``rabbitmq.conf`` has no key.
    """
    reason = can_run_nodes()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"fault tests cannot start a RabbitMQ node: {reason}")
        pytest.skip(reason)
    rabbit = RabbitNode(
        conf=[f"consumer_timeout = {CONSUMER_TIMEOUT_MS}"],
        advanced_config="[{rabbit, [{channel_tick_interval, 1000}]}].",
    )
    try:
        seconds = rabbit.start()
        print(
            f"\n[faults] private node {rabbit.name} (consumer_timeout {CONSUMER_TIMEOUT_MS} ms, "
            f"tick 1 s) on port {rabbit.port} up in {seconds:.1f}s"
        )
        yield rabbit
    finally:
        rabbit.remove()
