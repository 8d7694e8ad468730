"""RPC against the real broker: typed calls, load spread, timeouts, errors, connection loss."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from burrowmq import App, ConnectionLost, NoRoute, RemoteError, Router, RpcTimeout
from burrowmq.routing.procedure import service_queue
from burrowmq.rpc.protocol import HEADER_DEADLINE, now_ms
from burrowmq.topology.management import ManagementClient

pytestmark = pytest.mark.integration


class Quote(BaseModel):
    """A price request."""

    sku: str
    quantity: int


class Price(BaseModel):
    """A price reply."""

    sku: str
    total: float
    currency: str = "EUR"


class OutOfStockError(Exception):
    """A domain error raised by a handler."""


@pytest.fixture
def service(names: Any) -> str:
    """A unique service name whose queue is deleted after the test."""
    name = f"svc{uuid.uuid4().hex[:10]}"
    names.add_queue(service_queue(name))
    return name


@pytest.fixture
def apps(broker_url: str) -> Callable[..., contextlib.AbstractAsyncContextManager[App]]:
    """Start an App on the test broker for the duration of an ``async with``."""

    @contextlib.asynccontextmanager
    async def start(*routers: Router, **options: Any) -> AsyncIterator[App]:
        options.setdefault("name", f"test-rpc-{uuid.uuid4().hex[:10]}")
        options.setdefault("shutdown_timeout", 5.0)
        app = App(list(routers), url=broker_url, **options)
        async with app:
            yield app

    return start


def _client(app: App) -> Any:
    client = app._rpc_client
    assert client is not None
    return client


class TestTypedCalls:
    """Requests and replies are validated and shaped by the handler's annotations."""

    @pytest.mark.timeout(30)
    async def test_model_round_trips_both_ways(self, apps: Any, service: str) -> None:
        """A pydantic request arrives as a model and the reply decodes to the caller's model."""
        router = Router()
        seen: list[Quote] = []

        @router.rpc(f"{service}.quote")
        async def quote(req: Quote) -> Price:
            seen.append(req)
            return Price(sku=req.sku, total=req.quantity * 2.5)

        async with apps(router), apps() as client:
            price = await client.call(
                f"{service}.quote", Quote(sku="A-1", quantity=4), returns=Price, timeout=10
            )
            plain = await client.call(f"{service}.quote", {"sku": "B", "quantity": 1}, timeout=10)
        assert price == Price(sku="A-1", total=10.0)
        assert isinstance(seen[0], Quote)
        assert plain == {"sku": "B", "total": 2.5, "currency": "EUR"}

    @pytest.mark.timeout(30)
    async def test_return_annotation_shapes_a_dict(self, apps: Any, service: str) -> None:
        """A handler returning a dict for a model annotation replies with the model's fields."""
        router = Router()

        @router.rpc(f"{service}.quote")
        async def quote(req: Quote) -> Price:
            return {"sku": req.sku, "total": "3.5"}  # type: ignore[return-value]

        async with apps(router), apps() as client:
            reply = await client.call(f"{service}.quote", {"sku": "x", "quantity": 1}, timeout=10)
        assert reply == {"sku": "x", "total": 3.5, "currency": "EUR"}


class TestLoad:
    """Many calls in flight from one client, served by several instances."""

    @pytest.mark.timeout(90)
    async def test_thousand_concurrent_calls_two_servers(self, apps: Any, service: str) -> None:
        """1,000 concurrent calls each get their own result, and both servers take a share."""
        served: collections.Counter[str] = collections.Counter()

        def make_router(tag: str) -> Router:
            router = Router()

            @router.rpc(f"{service}.square", concurrency=32, prefetch=32)
            async def square(n: int) -> dict[str, int | str]:
                served[tag] += 1
                await asyncio.sleep(0.001)  # let deliveries interleave between servers
                return {"n": n, "square": n * n, "server": tag}

            return router

        async with apps(make_router("a")), apps(make_router("b")), apps() as client:
            replies = await asyncio.gather(
                *(client.call(f"{service}.square", n, timeout=60) for n in range(1000))
            )
            assert _client(client).in_flight == 0
        assert [r["n"] for r in replies] == list(range(1000))
        assert all(r["square"] == r["n"] ** 2 for r in replies)
        assert served["a"] + served["b"] == 1000
        assert min(served["a"], served["b"]) >= 100, served


class TestTimeouts:
    """A call gives up at its timeout and leaves nothing behind."""

    @pytest.mark.timeout(30)
    async def test_timeout_then_late_reply_is_dropped(self, apps: Any, service: str) -> None:
        """RpcTimeout comes near the timeout; the handler finishing later breaks nothing."""
        router = Router()
        release = asyncio.Event()
        finished = asyncio.Event()

        @router.rpc(f"{service}.slow")
        async def slow(n: int) -> int:
            if n == 0:
                await release.wait()
                finished.set()
            return n

        async with apps(router), apps() as client:
            started = time.monotonic()
            with pytest.raises(RpcTimeout) as caught:
                await client.call(f"{service}.slow", 0, timeout=0.5)
            elapsed = time.monotonic() - started
            assert 0.5 <= elapsed < 0.9, elapsed
            assert caught.value.procedure == f"{service}.slow"
            assert _client(client).in_flight == 0
            release.set()
            await finished.wait()
            # Replies from one server arrive in order: this one comes after the late one.
            assert await client.call(f"{service}.slow", 7, timeout=10) == 7
            assert _client(client).in_flight == 0

    @pytest.mark.timeout(30)
    async def test_cancelled_call_leaves_no_pending_entry(self, apps: Any, service: str) -> None:
        """Cancelling a waiting call removes it from the pending map."""
        router = Router()
        entered = asyncio.Event()
        release = asyncio.Event()

        @router.rpc(f"{service}.wait")
        async def wait(n: int) -> int:
            entered.set()
            await release.wait()
            return n

        async with apps(router), apps() as client:
            task = asyncio.create_task(client.call(f"{service}.wait", 1, timeout=20))
            await entered.wait()
            assert _client(client).in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _client(client).in_flight == 0
            release.set()

    @pytest.mark.timeout(30)
    async def test_expired_request_is_not_run(self, apps: Any, service: str) -> None:
        """A request whose deadline has passed is dropped by the server without running."""
        router = Router()
        calls: list[int] = []

        @router.rpc(f"{service}.record", concurrency=1, prefetch=1)
        async def record(n: int) -> int:
            calls.append(n)
            return n

        async with apps(router) as server, apps() as client:
            await server.publish(
                "burrowmq.rpc",
                1,
                routing_key=f"{service}.record",
                headers={HEADER_DEADLINE: now_ms() - 1000},
                reply_to="amq.rabbitmq.reply-to.unused",
            )
            # One worker, in order: when this call returns, the expired one was seen.
            assert await client.call(f"{service}.record", 2, timeout=10) == 2
        assert calls == [2]


class TestErrors:
    """Failures come back as precise errors, fast."""

    @pytest.mark.timeout(30)
    async def test_no_route_is_immediate(self, apps: Any) -> None:
        """Calling a service nobody serves raises NoRoute well under a second."""
        async with apps() as client:
            started = time.monotonic()
            with pytest.raises(NoRoute) as caught:
                await client.call(f"nobody{uuid.uuid4().hex[:8]}.method", {}, timeout=10)
            assert time.monotonic() - started < 0.5
        assert caught.value.exchange == "burrowmq.rpc"

    @pytest.mark.timeout(30)
    async def test_remote_exception_type_and_message(self, apps: Any, service: str) -> None:
        """The handler's exception type name and message reach the caller intact."""
        router = Router()

        @router.rpc(f"{service}.reserve")
        async def reserve(req: Quote) -> None:
            raise OutOfStockError(f"only 0 of {req.sku} left")

        with capture_logs() as logs:
            async with apps(router), apps() as client:
                with pytest.raises(RemoteError) as caught:
                    await client.call(
                        f"{service}.reserve", {"sku": "Z9", "quantity": 2}, timeout=10
                    )
        # An ordinary business error, answered to the caller: a warning, no traceback.
        [raised] = [e for e in logs if e["event"] == "rpc_handler_raised"]
        assert raised["log_level"] == "warning"
        assert raised["error"] == "OutOfStockError: only 0 of Z9 left"
        assert "exception" not in raised and "exc_info" not in raised
        assert not [e for e in logs if e["log_level"] == "error"], logs
        error = caught.value
        assert error.type == "OutOfStockError"
        assert error.remote_message == "only 0 of Z9 left"
        assert error.traceback is None
        assert error.procedure == f"{service}.reserve"

    @pytest.mark.timeout(30)
    async def test_traceback_only_when_enabled(self, apps: Any, service: str) -> None:
        """A server with rpc_tracebacks=True sends the handler's traceback."""
        router = Router()

        @router.rpc(f"{service}.fail")
        async def fail(n: int) -> int:
            raise ValueError("nope")

        async with apps(router, rpc_tracebacks=True), apps() as client:
            with pytest.raises(RemoteError) as caught:
                await client.call(f"{service}.fail", 1, timeout=10)
        assert caught.value.traceback is not None
        assert "ValueError: nope" in caught.value.traceback

    @pytest.mark.timeout(30)
    async def test_validation_error_names_the_field(self, apps: Any, service: str) -> None:
        """A request that fails validation comes back as a RemoteError naming the field."""
        router = Router()

        @router.rpc(f"{service}.quote")
        async def quote(req: Quote) -> Price:
            raise AssertionError("never called")

        async with apps(router), apps() as client:
            with pytest.raises(RemoteError) as caught:
                await client.call(f"{service}.quote", {"sku": "A", "quantity": "many"}, timeout=10)
        error = caught.value
        assert error.type == "ValidationError"
        assert "quantity" in error.remote_message
        assert [d["loc"] for d in error.details] == [["quantity"]]

    @pytest.mark.timeout(30)
    async def test_unknown_method_is_an_error_reply(self, apps: Any, service: str) -> None:
        """A method the service lacks is answered with an error at once, not a timeout."""
        router = Router()

        @router.rpc(f"{service}.known")
        async def known(n: int) -> int:
            return n

        async with apps(router), apps() as client:
            started = time.monotonic()
            with pytest.raises(RemoteError) as caught:
                await client.call(f"{service}.unknown", 1, timeout=10)
            assert time.monotonic() - started < 1.0
        assert caught.value.type == "UnknownProcedure"
        assert f"{service}.known" in caught.value.remote_message


async def _close_connection_named(management: ManagementClient, name: str) -> None:
    """Close, on the broker, only the connection whose client named itself ``name``.

    The management API lists a new connection after its next statistics tick: ask again
    until it is there.
    """
    found: list[str] = []
    for _ in range(100):
        connections = await management.request("GET", "/api/connections")
        found = [
            c["name"]
            for c in connections
            if (c.get("client_properties") or {}).get("connection_name") == name
        ]
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1, f"expected one connection named {name!r}, found {found}"
    await management.request("DELETE", f"/api/connections/{quote(found[0], safe='')}")


class TestConnectionLoss:
    """A lost connection fails waiting calls at once; calls work again after recovery."""

    @pytest.mark.timeout(60)
    async def test_in_flight_calls_fail_then_recover(
        self, apps: Any, service: str, management: ManagementClient
    ) -> None:
        """Closing the client's connection fails its in-flight calls fast; later calls work."""
        router = Router()
        entered = asyncio.Event()
        release = asyncio.Event()

        @router.rpc(f"{service}.hold", concurrency=8)
        async def hold(n: int) -> int:
            if n < 0:
                entered.set()
                await release.wait()
            return n

        name = f"test-rpc-client-{uuid.uuid4().hex[:10]}"
        async with apps(router), apps(name=name) as client:
            assert await client.call(f"{service}.hold", 1, timeout=10) == 1
            waiting = [
                asyncio.create_task(client.call(f"{service}.hold", -1, timeout=30))
                for _ in range(3)
            ]
            await entered.wait()
            # Calls travel on the app's publishing connection (with its reply channel).
            await _close_connection_named(management, f"{name} (publish)")
            failed_at = time.monotonic()
            results = await asyncio.gather(*waiting, return_exceptions=True)
            assert time.monotonic() - failed_at < 1.0
            assert all(isinstance(r, ConnectionLost) for r in results), results
            assert _client(client).in_flight == 0
            release.set()
            await client.transport.wait_connected(20)
            assert await client.call(f"{service}.hold", 5, timeout=10) == 5


def _pid_address(node: bytes) -> str:
    pid = bytes([131, 88, 119, len(node)]) + node + bytes(12)
    return f"amq.rabbitmq.reply-to.{base64.b64encode(pid).decode()}.a2V5"


class TestHostileReplyTo:
    """Requests whose reply_to the broker would choke on cost neither the server's connection nor other calls."""

    @pytest.mark.timeout(90)
    async def test_malformed_and_forged_reply_addresses(
        self, apps: Any, service: str, broker_url: str
    ) -> None:
        """Malformed, forged-node and plain-queue reply_to requests among 300 legitimate calls: every call succeeds, the server's connections stay up, no plain queue is written to."""
        router = Router()

        @router.rpc(f"{service}.double", concurrency=8)
        async def double(n: int) -> int:
            return n * 2

        hostile = [
            "amq.rabbitmq.reply-to.AAAA",
            "amq.rabbitmq.reply-to.g2dk.x",
            "amq.rabbitmq.reply-to.!!!.x",
            _pid_address(b"reply@99999999"),  # well formed, names no node: 3.x chokes on it
            _pid_address(b"reply@88888888"),
            _pid_address(b"rabbit@nowhere"),
        ]
        with capture_logs() as logs:
            async with apps(router) as server, apps() as client:
                connection = await aio_pika.connect(broker_url)
                try:
                    channel = await connection.channel()
                    plain = await channel.declare_queue(exclusive=True)
                    rpc = await channel.get_exchange("burrowmq.rpc")

                    async def attack() -> None:
                        for round_ in range(5):
                            for reply_to in [*hostile, plain.name]:
                                await rpc.publish(
                                    aio_pika.Message(
                                        b"1", reply_to=reply_to, correlation_id=f"x{round_}"
                                    ),
                                    routing_key=f"{service}.double",
                                )
                            await asyncio.sleep(0.01)

                    calls = [client.call(f"{service}.double", n, timeout=20) for n in range(300)]
                    results, _ = await asyncio.gather(asyncio.gather(*calls), attack())
                    assert results == [n * 2 for n in range(300)]
                    await asyncio.sleep(0.5)  # replies to the plain queue would be here by now
                    assert await plain.get(fail=False) is None, "a reply reached a plain queue"
                finally:
                    await connection.close()
                assert server.transport.is_connected
        lost = [
            e for e in logs if e["event"] == "connection_lost" and e.get("role") != "reply check"
        ]
        assert lost == [], lost
        refused = [e for e in logs if e["event"] == "rpc_reply_to_refused"]
        assert len(refused) >= 5 * 5, "the malformed and plain addresses were refused locally"
