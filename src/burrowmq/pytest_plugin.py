"""The burrowmq pytest plugin: fixtures that run your app on the in-memory broker.

Installed with burrowmq and enabled through the ``pytest11`` entry point. Tell it which
app to run by overriding ``burrowmq_app`` in your ``conftest.py``, then take
``burrowmq_client`` in a test::

    @pytest.fixture
    def burrowmq_app() -> App:
        from myservice import app
        return app

    async def test_charge(burrowmq_client: TestClient) -> None:
        await burrowmq_client.publish_and_wait("billing", Charge(...), routing_key="charge")
        assert burrowmq_client.dead_letters("billing.charge") == []

Async fixtures need an asyncio test plugin (pytest-asyncio, or anyio's); with
pytest-asyncio they work in both its strict and auto modes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import pytest

from burrowmq.app import App
from burrowmq.memory.transport import MemoryTransport
from burrowmq.testing import TestClient

__all__ = ["burrowmq_app", "burrowmq_client", "burrowmq_transport", "burrowmq_url"]

F = TypeVar("F", bound=Callable[..., Any])

_fixture: Callable[[Any], Any]
try:
    import pytest_asyncio

    _fixture = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - anyio's plugin runs plain async fixtures
    _fixture = pytest.fixture


def _async_fixture(func: F) -> F:
    """pytest-asyncio's fixture decorator where it is installed, pytest's otherwise."""
    return cast(F, _fixture(func))


@pytest.fixture
def burrowmq_url() -> str:
    """A ``memory://`` URL of a broker of this test's own."""
    return f"memory://pytest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def burrowmq_app() -> App:
    """The app ``burrowmq_client`` runs: override this fixture to return yours."""
    raise pytest.UsageError(
        "burrowmq_client needs your app: define a fixture named burrowmq_app that "
        "returns it, e.g. in conftest.py"
    )


@_async_fixture
async def burrowmq_client(burrowmq_app: App, burrowmq_url: str) -> AsyncIterator[TestClient]:
    """A running :class:`~burrowmq.testing.TestClient` for ``burrowmq_app``."""
    async with TestClient(burrowmq_app, url=burrowmq_url) as client:
        yield client


@_async_fixture
async def burrowmq_transport(burrowmq_url: str) -> AsyncIterator[MemoryTransport]:
    """A connected :class:`MemoryTransport` on the same broker as ``burrowmq_client``."""
    transport = MemoryTransport.shared(burrowmq_url)
    await transport.connect()
    try:
        yield transport
    finally:
        await transport.close()
