"""Shared fixtures: the real broker, unique names with cleanup, and a leak check.

Where ``CI=true``, a broker that does not answer fails the tests that need it instead
of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
import structlog

from burrowmq import App, Router

BROKER_URL = os.environ.get("BURROWMQ_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")
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

    async def cleanup(self, url: str) -> None:
        """Delete every queue and exchange registered (missing ones are fine)."""
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


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def fresh_vhost(broker_url: str) -> Iterator[str]:
    """A new, empty vhost for this test (deleted afterwards); yields its AMQP URL."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    vhost = f"t-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        parts = urlsplit(broker_url)
        yield f"{parts.scheme}://{parts.netloc}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


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
