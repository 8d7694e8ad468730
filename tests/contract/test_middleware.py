"""Contract: App middleware wraps message handlers and RPC handlers alike.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from burrowmq import Idempotency, Message, Router, RpcTimeout
from burrowmq.framework.middleware import CallNext
from tests.contract.conftest import Backend

pytestmark = pytest.mark.contract


def _request_id(message: Message) -> str | None:
    value = message.headers.get("request-id")
    return value if isinstance(value, str) else None


class TestMiddlewareWrapsEveryRoute:
    """One middleware list, around both kinds of route."""

    async def test_sees_message_and_rpc_deliveries(self, backend: Backend) -> None:
        """A middleware runs around a message handler and around an RPC handler, with each one's Message."""
        service = f"svc{uuid.uuid4().hex[:8]}"
        backend.names.add_queue(f"rpc.{service}")
        queue = backend.names.queue("jobs")
        seen: list[tuple[str, str]] = []
        done = asyncio.Event()

        async def record(message: Message, call_next: CallNext) -> Any:
            seen.append((message.queue, message.routing_key))
            return await call_next()

        router = Router()

        @router.consume(queue, queue_options={})
        async def job(body: dict[str, int]) -> None:
            done.set()

        @router.rpc(f"{service}.echo")
        async def echo(n: int) -> int:
            return n

        app = backend.app(router, middleware=[record])
        await app.start()
        await app.publish("", {"n": 1}, routing_key=queue)
        await asyncio.wait_for(done.wait(), 10)
        assert await app.call(f"{service}.echo", 5, timeout=10) == 5
        assert sorted(seen) == sorted([(queue, queue), (f"rpc.{service}", f"{service}.echo")])

    async def test_idempotency_drops_a_repeated_rpc_request(self, backend: Backend) -> None:
        """Idempotency runs an RPC request once per key: the repeat is acked without a reply, so its caller times out."""
        service = f"svc{uuid.uuid4().hex[:8]}"
        backend.names.add_queue(f"rpc.{service}")
        runs: list[int] = []
        guard = Idempotency(key=_request_id)
        router = Router()

        @router.rpc(f"{service}.charge")
        async def charge(amount: int) -> str:
            runs.append(amount)
            return f"charged {amount}"

        server = backend.app(router, middleware=[guard])
        client = backend.app()
        await server.start()
        await client.start()
        headers = {"request-id": "order-1"}
        assert await client.call(f"{service}.charge", 5, headers=headers, timeout=10) == "charged 5"
        with pytest.raises(RpcTimeout):
            await client.call(f"{service}.charge", 5, headers=headers, timeout=0.5)
        assert (
            await client.call(f"{service}.charge", 7, headers={"request-id": "order-2"}, timeout=10)
            == "charged 7"
        )
        assert runs == [5, 7]
        assert guard.dropped == 1

    async def test_idempotency_drops_a_repeated_message(self, backend: Backend) -> None:
        """Idempotency runs a message once per message id and acks the repeat unhandled."""
        queue = backend.names.queue("once")
        runs: list[int] = []
        guard = Idempotency()
        handled = asyncio.Event()
        router = Router()

        @router.consume(queue, queue_options={})
        async def job(body: dict[str, int]) -> None:
            runs.append(body["n"])
            if len(runs) == 2:
                handled.set()

        app = backend.app(router, middleware=[guard])
        await app.start()
        for n, message_id in ((1, "m1"), (1, "m1"), (2, "m2")):
            await app.publish("", {"n": n}, routing_key=queue, message_id=message_id)
        await asyncio.wait_for(handled.wait(), 10)
        for _ in range(100):  # the repeat is settled too
            if guard.dropped:
                break
            await asyncio.sleep(0.02)
        assert runs == [1, 2]
        assert guard.dropped == 1
