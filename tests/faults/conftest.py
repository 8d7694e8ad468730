"""Fixtures for fault tests: one private RabbitMQ node per session, never the shared broker.

The node boots once (about 5-15 s) and serves every fault test; the restart test stops
and starts that same node, which keeps its data. Each test gets unique queue names,
deleted afterwards. Where ``CI=true``, a machine that cannot start nodes fails the tests
instead of skipping them.

``BURROWMQ_TEST_NODES=rabbitmq4`` makes every private node (these fixtures' and the ones
tests build with ``RabbitNode()``) a RabbitMQ 4.0.5 node in the chroot of
``scripts/rabbitmq4``, built first when missing; by default they are the host's 3.10. The
session's first line says which.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aio_pika
import pytest

from burrowmq import App
from tests.conftest import IN_CI, Names, app_factory, raw_channel
from tests.faults.node import (
    RABBITMQ4,
    RABBITMQ4_ROOT,
    RabbitNode,
    can_run_nodes,
    nodes_flavour,
    nodes_version,
)

Say = Callable[[str], None]


@pytest.fixture(scope="session")
def say(request: pytest.FixtureRequest) -> Say:
    """Print a line on the terminal at once, past pytest's output capture (progress lines)."""
    capture: Any = request.config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(line, flush=True)

    return say


def require_nodes(say: Say, flavour: str | None = None) -> None:
    """Skip (fail under ``CI=true``) unless private nodes of ``flavour`` can run here.

    A missing RabbitMQ 4 chroot is built first (its progress is printed).
    """
    reason = can_run_nodes(flavour, progress=say)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"fault tests cannot start a RabbitMQ node: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def node_flavour(say: Say) -> str:
    """Which RabbitMQ the session's private nodes run, said in its first line."""
    flavour = nodes_flavour()
    if flavour == RABBITMQ4:
        with contextlib.suppress(pytest.skip.Exception):  # each node fixture skips on its own
            require_nodes(say, flavour)
        where = f"BURROWMQ_TEST_NODES=rabbitmq4: the Debian trixie chroot {RABBITMQ4_ROOT}"
    else:
        where = "the host's rabbitmq-server; BURROWMQ_TEST_NODES=rabbitmq4 for RabbitMQ 4"
    say(f"\n[faults] private nodes run RabbitMQ {nodes_version(flavour)} ({where})")
    return flavour


@pytest.fixture(scope="session")
def node(say: Say) -> Iterator[RabbitNode]:
    """A private RabbitMQ node on free loopback ports, removed at the end of the session."""
    require_nodes(say)
    rabbit = RabbitNode()
    try:
        seconds = rabbit.start()
        say(
            f"\n[faults] private node {rabbit.name} (RabbitMQ {rabbit.version()}) "
            f"on port {rabbit.port} up in {seconds:.1f}s"
        )
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


CONSUMER_TIMEOUT_MS = 3000
"""The ``consumer_timeout`` of :func:`consumer_timeout_node`."""


@pytest.fixture(scope="session")
def consumer_timeout_node(say: Say) -> Iterator[RabbitNode]:
    """A second private node whose channels time out unacked deliveries after 3 s.

    RabbitMQ checks ``consumer_timeout`` on each channel's tick, every
    ``channel_tick_interval`` ms (60,000 by default on 3.10, so a 3 s timeout would
    strike up to a minute late); the tick is set to 1 s here in ``advanced.config``,
    for which ``rabbitmq.conf`` has no key.
    """
    require_nodes(say)
    rabbit = RabbitNode(
        conf=[f"consumer_timeout = {CONSUMER_TIMEOUT_MS}"],
        advanced_config="[{rabbit, [{channel_tick_interval, 1000}]}].",
    )
    try:
        seconds = rabbit.start()
        say(
            f"\n[faults] private node {rabbit.name} (RabbitMQ {rabbit.version()}, consumer_timeout "
            f"{CONSUMER_TIMEOUT_MS} ms, tick 1 s) on port {rabbit.port} up in {seconds:.1f}s"
        )
        yield rabbit
    finally:
        rabbit.remove()
