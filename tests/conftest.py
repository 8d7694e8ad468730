"""Shared fixtures: the real broker, unique names with cleanup, and a leak check.

``BURROWMQ_TEST_URL`` (AMQP) and ``BURROWMQ_TEST_MANAGEMENT_URL`` (its management API;
default: the broker's host, port 15672) are the only knobs that point the suite at a
broker. Where ``CI=true``, a broker that does not answer fails the tests that need it
instead of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import pytest
import structlog

from burrowmq import App, Router
from burrowmq.exceptions import TransportError
from burrowmq.topology.management import ManagementClient

BROKER_URL = os.environ.get("BURROWMQ_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("BURROWMQ_TEST_MANAGEMENT_URL") or (
    f"http://{urlsplit(BROKER_URL).hostname or '127.0.0.1'}:15672"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The URL of the real RabbitMQ; skips (fails in CI) when none answers."""
    if not _broker_answers(BROKER_URL):
        message = f"no RabbitMQ answers at {urlsplit(BROKER_URL).netloc.split('@')[-1]}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing broker is a failure)")
        pytest.skip(message)
    return BROKER_URL


class Names:
    """Unique queue and exchange names for one test, deleted when the test ends."""

    def __init__(self, test_name: str) -> None:
        safe = "".join(c if c.isalnum() else "-" for c in test_name)[:40]
        self.prefix = f"t.{safe}.{uuid.uuid4().hex[:8]}"
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()

    def queue(self, name: str = "q") -> str:
        """A unique queue name; its ``.dlq`` and ``.dlx`` are cleaned up too."""
        full = f"{self.prefix}.{name}"
        self.queues.update({full, f"{full}.dlq"})
        self.exchanges.add(f"{full}.dlx")
        return full

    def exchange(self, name: str = "ex") -> str:
        """A unique exchange name."""
        full = f"{self.prefix}.{name}"
        self.exchanges.add(full)
        return full

    def add_queue(self, name: str) -> str:
        """Register an extra queue (e.g. a delay queue) for cleanup."""
        self.queues.add(name)
        return name

    def _left_on_broker(self, url: str) -> tuple[set[str], set[str]]:
        """Queues and exchanges on the broker whose names start with this test's prefix.

        What the code under test declared without the test registering it (a stream
        consumer's lease and mark queues, a partition's dead-letter queue) is deleted
        too. Through the management API; nothing when it does not answer.
        """
        vhost = quote(unquote(urlsplit(url).path[1:]) or "/", safe="")
        client = ManagementClient(url, management_url=MANAGEMENT_URL)
        found: tuple[set[str], set[str]] = (set(), set())
        for kind, names in (("queues", found[0]), ("exchanges", found[1])):
            with contextlib.suppress(Exception):
                listed = client._send("GET", f"/api/{kind}/{vhost}?columns=name", None)
                names.update(
                    item["name"] for item in listed if item["name"].startswith(self.prefix)
                )
        return found

    async def cleanup(self, url: str) -> None:
        """Delete every queue and exchange registered, and any other carrying this test's
        prefix (missing ones are fine)."""
        queues, exchanges = await asyncio.to_thread(self._left_on_broker, url)
        self.queues |= queues
        self.exchanges |= exchanges
        connection = await aio_pika.connect(url)
        try:
            for name in sorted(self.queues):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
                with contextlib.suppress(Exception):
                    await channel.close()
            for name in sorted(self.exchanges):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(name)
                with contextlib.suppress(Exception):
                    await channel.close()
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def app_factory(url: str) -> AsyncIterator[Callable[..., App]]:
    """Build Apps on ``url``; every one is stopped when the block ends."""
    apps: list[App] = []

    def factory(*routers: Router, **options: Any) -> App:
        options.setdefault("url", url)
        options.setdefault("shutdown_timeout", 10.0)
        # Tests allow more than the default 5 s to connect: a broker busy with the
        # suite's churn must not fail a test on the handshake alone.
        options.setdefault("connect_timeout", 15.0)
        app = App(list(routers), **options)
        apps.append(app)
        return app

    try:
        yield factory
    finally:
        for app in reversed(apps):
            await app.stop()


@contextlib.asynccontextmanager
async def raw_channel(url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A raw aio-pika channel, to look at a broker independently of burrowmq."""
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel()
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


@pytest.fixture
async def names(request: pytest.FixtureRequest, broker_url: str) -> AsyncIterator[Names]:
    """Unique names for this test; everything registered is deleted afterwards."""
    registry = Names(request.node.name)
    yield registry
    await registry.cleanup(broker_url)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Undo logging configuration a test made (the CLI configures structlog)."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves burrowmq tasks (workers, recovery, RPC) running."""
    yield
    await asyncio.sleep(0)  # let tasks that were just cancelled finish
    leaked = [
        t.get_name()
        for t in asyncio.all_tasks()
        if not t.done() and t.get_name().startswith("burrowmq-")
    ]
    assert not leaked, f"tasks left running after the test: {leaked}"


@pytest.fixture(scope="session")
def management_url(broker_url: str) -> str:
    """The management API of the test broker (``BURROWMQ_TEST_MANAGEMENT_URL``)."""
    return MANAGEMENT_URL


@pytest.fixture
async def management(broker_url: str, management_url: str) -> ManagementClient:
    """A management API client of the test broker; skips (fails in CI) when it does not answer."""
    client = ManagementClient(broker_url, management_url=management_url)
    try:
        await client.request("GET", "/api/overview")
    except TransportError as exc:
        message = f"the management API does not answer at {management_url}: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing broker is a failure)")
        pytest.skip(message)
    return client


@pytest.fixture
def fresh_vhost(broker_url: str, management_url: str) -> Iterator[str]:
    """A new, empty vhost for this test (deleted afterwards); yields its AMQP URL.

    Made through the management API (no host ``rabbitmqctl``), synchronously, so that
    plain test functions can take it too.
    """
    client = ManagementClient(broker_url, management_url=management_url)
    vhost = f"t-{uuid.uuid4().hex[:10]}"
    path = quote(vhost, safe="")
    try:
        client._send("PUT", f"/api/vhosts/{path}", {})
    except TransportError as exc:
        message = f"the management API does not answer at {management_url}: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing broker is a failure)")
        pytest.skip(message)
    try:
        client._send(
            "PUT",
            f"/api/permissions/{path}/guest",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )
        parts = urlsplit(broker_url)
        yield f"{parts.scheme}://{parts.netloc}/{path}"
    finally:
        client._send("DELETE", f"/api/vhosts/{path}", None)


@pytest.fixture(scope="session", autouse=True)
def _shared_rpc_exchange_removed() -> Iterator[None]:
    """Delete the ``burrowmq.rpc`` exchange the RPC tests declared, if nothing uses it."""
    yield
    if not _broker_answers(BROKER_URL):
        return

    async def remove() -> None:
        connection = await aio_pika.connect(BROKER_URL)
        try:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete("burrowmq.rpc", if_unused=True)
        finally:
            await connection.close()

    asyncio.run(remove())


def pytest_report_header(config: pytest.Config) -> str:
    """Say which broker this run tests against (CI runs the suite on two)."""
    client = ManagementClient(BROKER_URL, management_url=MANAGEMENT_URL)
    try:
        overview = client._send("GET", "/api/overview", None)
    except TransportError as exc:
        return f"broker: {urlsplit(BROKER_URL).netloc.split('@')[-1]} (version unknown: {exc})"
    version = overview.get("rabbitmq_version", "?")
    node = overview.get("node", "?")
    where = urlsplit(BROKER_URL).netloc.split("@")[-1]
    return f"broker: RabbitMQ {version} (node {node}) at {where}"
