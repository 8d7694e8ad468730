"""The blocking client against the real broker, with an async service consuming beside it.

The service runs in the test's own event loop; the blocking client is driven from plain
threads (a WSGI server's, a thread pool's, a forked child's), as Flask, Django and
scripts drive it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import pytest
import waitress
from pydantic import BaseModel

from burrowmq import (
    App,
    ConnectionLost,
    NoRoute,
    NoServer,
    PublishError,
    RemoteError,
    Router,
    RpcTimeout,
    StateError,
    Unroutable,
)
from burrowmq.sync import Client
from burrowmq.topology.management import ManagementClient
from tests.integration.conftest import wait_for
from tests.integration.flask_app import create_app

pytestmark = pytest.mark.integration

T = TypeVar("T")


class Quote(BaseModel):
    """A price request."""

    sku: str


class Price(BaseModel):
    """A price reply."""

    sku: str
    total: float


class OutOfStockError(Exception):
    """A domain error the remote handler raises."""


@dataclass
class Service:
    """An async service: a topic consumer on ``exchange`` and ``<service>.quote`` RPC."""

    app: App
    exchange: str
    service: str
    handled: list[int] = field(default_factory=list)
    answered: int = 0


@pytest.fixture
def blocking() -> Iterator[Callable[..., Any]]:
    """Run a blocking function in a thread of a pool shut down after the test."""
    pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="test-blocking")

    async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args, **kwargs))

    yield run
    pool.shutdown(wait=True)


@pytest.fixture
async def service(fresh_vhost: str) -> AsyncIterator[Service]:
    """The async service, started in a vhost of its own; stopped when the test ends.

    A vhost of its own, because the RPC exchange is shared by every RPC test on the
    broker, and a session that ends deletes it when it looks unused.
    """
    exchange = "orders"
    name = f"svc{uuid.uuid4().hex[:10]}"
    router = Router()
    app = App(
        [router],
        url=fresh_vhost,
        name=f"test-sync-{name}",
        shutdown_timeout=10,
        connect_timeout=15.0,
    )
    svc = Service(app=app, exchange=exchange, service=name)

    @router.topic(exchange, "order.*.placed", queue="orders.placed", concurrency=32)
    async def placed(body: dict[str, int]) -> None:
        svc.handled.append(body["n"])

    @router.rpc(f"{name}.quote")
    async def quote(req: Quote) -> Price:
        if req.sku == "gone":
            raise OutOfStockError(f"{req.sku} is out of stock")
        if req.sku == "slow":
            await asyncio.sleep(3)
        svc.answered += 1
        return Price(sku=req.sku, total=len(req.sku) * 1.5)

    async with app:
        yield svc


@pytest.fixture
def client(fresh_vhost: str) -> Iterator[Client]:
    """A blocking client of the test's vhost, closed after the test."""
    client = Client(fresh_vhost, name="test-sync-client", timeout=15)
    yield client
    client.close()


class TestPublish:
    """publish and publish_many block until confirmed; an async consumer gets them."""

    @pytest.mark.timeout(60)
    async def test_publish_reaches_the_async_consumer(self, service, client, blocking) -> None:
        """A message published by the blocking client is handled by the async service."""
        message_id = await blocking(
            client.publish, service.exchange, {"n": 1}, routing_key="order.eu.placed"
        )
        assert message_id
        await wait_for(lambda: service.handled == [1])

    @pytest.mark.timeout(60)
    async def test_publish_many_delivers_every_message(self, service, client, blocking) -> None:
        """publish_many confirms 200 messages, returns their ids in order; all are handled."""
        bodies = ({"n": n} for n in range(200))  # a generator: read in the calling thread
        ids = await blocking(
            client.publish_many, service.exchange, bodies, routing_key="order.us.placed"
        )
        assert len(ids) == len(set(ids)) == 200
        await wait_for(lambda: len(service.handled) == 200)
        assert sorted(service.handled) == list(range(200))

    @pytest.mark.timeout(60)
    async def test_mandatory_publish_to_no_queue_is_unroutable(
        self, service, client, blocking
    ) -> None:
        """A mandatory publish with a key nothing binds raises Unroutable."""
        with pytest.raises(Unroutable):
            await blocking(
                client.publish, service.exchange, {"n": 1}, routing_key="x", mandatory=True
            )

    @pytest.mark.timeout(60)
    async def test_publish_to_a_missing_exchange_is_a_publish_error(self, client, blocking) -> None:
        """A publish to an exchange that does not exist raises PublishError, and the
        client goes on publishing."""
        with pytest.raises(PublishError):
            await blocking(client.publish, f"no-such-{uuid.uuid4().hex}", b"x")
        assert await blocking(client.publish, "", b"x", routing_key=f"nowhere-{uuid.uuid4()}")


class TestCall:
    """call blocks until the reply, with App.call's decoding and errors."""

    @pytest.mark.timeout(60)
    async def test_call_decodes_the_reply_as_returns(self, service, client, blocking) -> None:
        """``returns=Price`` decodes the reply to the model; without it, plain JSON."""
        price = await blocking(
            client.call, f"{service.service}.quote", Quote(sku="tea"), returns=Price
        )
        assert price == Price(sku="tea", total=4.5)
        raw = await blocking(client.call, f"{service.service}.quote", {"sku": "tea"})
        assert raw == {"sku": "tea", "total": 4.5}

    @pytest.mark.timeout(60)
    async def test_remote_exception_is_a_remote_error(self, service, client, blocking) -> None:
        """A handler that raised comes back as RemoteError with its type and message."""
        with pytest.raises(RemoteError) as caught:
            await blocking(client.call, f"{service.service}.quote", {"sku": "gone"})
        assert caught.value.type == "OutOfStockError"
        assert "out of stock" in caught.value.remote_message

    @pytest.mark.timeout(60)
    async def test_slow_reply_is_an_rpc_timeout(self, service, client, blocking) -> None:
        """No reply within ``timeout`` raises RpcTimeout after about that long."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RpcTimeout):
            await blocking(client.call, f"{service.service}.quote", {"sku": "slow"}, timeout=0.5)
        assert loop.time() - started < 2.5

    @pytest.mark.timeout(60)
    async def test_no_service_is_no_route_and_no_consumer_is_no_server(
        self, service, client, blocking
    ) -> None:
        """An unknown service raises NoRoute; a stopped one (its queue left) NoServer."""
        with pytest.raises(NoRoute):
            await blocking(client.call, f"nobody{uuid.uuid4().hex[:8]}.quote", {}, timeout=5)
        await service.app.stop()
        with pytest.raises(NoServer):
            await blocking(client.call, f"{service.service}.quote", {"sku": "tea"}, timeout=5)

    @pytest.mark.timeout(90)
    async def test_many_threads_call_at_once(self, service, client, blocking) -> None:
        """Eight threads, 25 calls each, on one client: every call gets its own answer."""

        def calls(worker: int) -> list[Price]:
            return [
                client.call(f"{service.service}.quote", {"sku": f"s{worker}-{i}"}, returns=Price)
                for i in range(25)
            ]

        results = await asyncio.gather(*(blocking(calls, w) for w in range(8)))
        for worker, prices in enumerate(results):
            assert [p.sku for p in prices] == [f"s{worker}-{i}" for i in range(25)]
        assert service.answered == 200


class TestLifecycle:
    """Own-loop refusal, close while waiting, no thread left."""

    @pytest.mark.timeout(60)
    async def test_call_from_the_loop_thread_is_refused(self, service, client, blocking) -> None:
        """A blocking call made on the client's own loop raises StateError at once."""
        await blocking(client.connect)
        assert client._loop is not None

        async def inside() -> Any:
            return client.call(f"{service.service}.quote", {"sku": "tea"})

        future = asyncio.run_coroutine_threadsafe(inside(), client._loop)
        with pytest.raises(StateError, match="own event loop"):
            await asyncio.wrap_future(future)

    @pytest.mark.timeout(60)
    async def test_close_while_a_call_waits_is_connection_lost(
        self, service, client, blocking
    ) -> None:
        """A call waiting when another thread closes the client fails, not hangs."""
        await blocking(client.connect)
        waiting = asyncio.ensure_future(
            blocking(client.call, f"{service.service}.quote", {"sku": "slow"}, timeout=10)
        )
        await wait_for(lambda: bool(client._app and client._app._rpc_client))
        await asyncio.sleep(0.2)  # the request is on its way
        await blocking(client.close)
        with pytest.raises((ConnectionLost, StateError)):
            await waiting
        assert not [t for t in threading.enumerate() if t.name == "burrowmq-sync-loop"]


class TestWsgi:
    """A Flask site on a real WSGI server publishes and calls through one shared client."""

    @pytest.mark.timeout(180)
    async def test_flask_under_waitress_with_8_threads(
        self, service, fresh_vhost, blocking
    ) -> None:
        """400 HTTP requests from 16 threads: every message handled, every call answered,
        and after close and server shutdown no thread is left behind."""
        before = set(threading.enumerate())
        client = Client(fresh_vhost, name="test-sync-flask", timeout=15)
        site = create_app(client, exchange=service.exchange, service=service.service)
        server = waitress.create_server(site, host="127.0.0.1", port=0, threads=8)
        serving = threading.Thread(target=server.run, name="test-waitress")
        serving.start()
        base = f"http://127.0.0.1:{server.effective_port}"

        def request(n: int) -> dict[str, Any]:
            if n % 2:
                req = urllib.request.Request(f"{base}/orders/{n}", method="POST", data=b"")
            else:
                req = urllib.request.Request(f"{base}/quote/sku{n}")
            with urllib.request.urlopen(req, timeout=30) as response:
                assert response.status == 200
                result: dict[str, Any] = json.load(response)
                return result

        def drive() -> list[dict[str, Any]]:
            with concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="test-http") as pool:
                return list(pool.map(request, range(400)))

        try:
            results = await blocking(drive)
        finally:
            await blocking(client.close)
            server.task_dispatcher.shutdown()
            waitress.wasyncore.close_all(server._map)
            await blocking(serving.join, 10)

        quotes = [r for r in results if "sku" in r]
        assert sorted(q["sku"] for q in quotes) == sorted(f"sku{n}" for n in range(0, 400, 2))
        assert all(q["total"] == len(q["sku"]) * 1.5 for q in quotes)
        assert service.answered == 200
        await wait_for(lambda: len(service.handled) == 200)
        assert sorted(service.handled) == list(range(1, 400, 2))
        left = set(threading.enumerate()) - before
        assert not [t for t in left if not t.name.startswith("test-blocking")], left


class TestFork:
    """A forked child (a pre-forking server's worker) uses the client it inherited."""

    @pytest.mark.timeout(90)
    @pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
    async def test_forked_child_publishes_and_calls(
        self, service, client, blocking, fresh_vhost, management_url
    ) -> None:
        """After the parent used the client, a forked child publishes 50 messages and calls
        once on fresh connections; the parent publishes on its own afterwards, on the very
        connections it had (the child never spoke on them); all arrive."""
        await blocking(client.publish, service.exchange, {"n": 0}, routing_key="order.eu.placed")
        await wait_for(lambda: service.handled == [0])
        management = ManagementClient(fresh_vhost, management_url=management_url)
        vhost = quote(urlsplit(fresh_vhost).path.lstrip("/"), safe="")

        def connections() -> set[str]:
            listed = management._send("GET", f"/api/vhosts/{vhost}/connections", None)
            return {c["name"] for c in listed}

        # The service's two connections and the client's two, once the broker lists them.
        seen: set[str] = set()

        async def listed() -> bool:
            seen.update(await blocking(connections))
            return len(seen) >= 4

        deadline = asyncio.get_running_loop().time() + 30
        while not await listed():
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.2)
        parents = set(seen)

        pid = os.fork()
        if pid == 0:  # the child: touch nothing of the test's; leave by os._exit
            code = 1
            try:
                for n in range(1, 51):
                    client.publish(service.exchange, {"n": n}, routing_key="order.eu.placed")
                price = client.call(f"{service.service}.quote", {"sku": "fork"}, returns=Price)
                client.close()
                code = 0 if price.total == 6.0 else 2
            finally:
                os._exit(code)

        exit_status: list[int] = []

        def reaped() -> bool:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                exit_status.append(status)
            return bool(exit_status)

        await wait_for(reaped, timeout=60)
        assert os.waitstatus_to_exitcode(exit_status[0]) == 0
        for n in range(51, 61):
            await blocking(
                client.publish, service.exchange, {"n": n}, routing_key="order.eu.placed"
            )
        price = await blocking(
            client.call, f"{service.service}.quote", {"sku": "tea"}, returns=Price
        )
        assert price.total == 4.5
        await wait_for(lambda: len(service.handled) == 61)
        assert sorted(service.handled) == list(range(61))
        assert parents <= await blocking(connections), "the parent's connections survived"
