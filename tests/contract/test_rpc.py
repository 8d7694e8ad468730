"""Contract: remote procedure calls over direct reply-to.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``). Service
names are unique per test, since every service shares the ``burrowmq.rpc`` exchange.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel

from burrowmq import NoRoute, RemoteError, Router, RpcTimeout
from tests.contract.conftest import Backend

pytestmark = pytest.mark.contract


class Sum(BaseModel):
    """Two numbers to add."""

    a: int
    b: int


def service(backend: Backend) -> str:
    """A unique service name, its queue registered for cleanup."""
    name = f"svc{uuid.uuid4().hex[:8]}"
    backend.names.add_queue(f"rpc.{name}")
    return name


class TestCalls:
    """Calls reach their procedure and bring back its reply or its error."""

    async def test_round_trip(self, backend: Backend) -> None:
        """A call returns the procedure's result, decoded to the requested type."""
        name = service(backend)
        router = Router()

        @router.rpc(f"{name}.add")
        async def add(req: Sum) -> int:
            return req.a + req.b

        server, client = backend.app(router), backend.app()
        await server.start()
        await client.start()
        results = await asyncio.gather(
            *(client.call(f"{name}.add", Sum(a=n, b=1), returns=int, timeout=10) for n in range(5))
        )
        assert results == [1, 2, 3, 4, 5]

    async def test_remote_error(self, backend: Backend) -> None:
        """A handler's exception comes back as RemoteError with its type and message."""
        name = service(backend)
        router = Router()

        @router.rpc(f"{name}.div")
        async def div(req: Sum) -> float:
            return req.a / req.b

        app = backend.app(router)
        await app.start()
        with pytest.raises(RemoteError) as caught:
            await app.call(f"{name}.div", Sum(a=1, b=0), timeout=10)
        assert caught.value.type == "ZeroDivisionError"

    async def test_no_server_is_no_route(self, backend: Backend) -> None:
        """Calling a service nobody serves raises NoRoute at once, not a timeout."""
        app = backend.app()
        await app.start()
        with pytest.raises(NoRoute):
            await app.call(f"{service(backend)}.missing", {}, timeout=10)

    async def test_slow_handler_times_out(self, backend: Backend) -> None:
        """A reply that does not come within the timeout raises RpcTimeout."""
        name = service(backend)
        router = Router()
        release = asyncio.Event()

        @router.rpc(f"{name}.slow")
        async def slow(req: dict[str, int]) -> int:
            await release.wait()
            return 1

        app = backend.app(router)
        await app.start()
        with pytest.raises(RpcTimeout):
            await app.call(f"{name}.slow", {}, timeout=0.2)
        release.set()
