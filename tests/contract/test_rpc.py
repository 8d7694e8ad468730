"""Contract: remote procedure calls over direct reply-to.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``). Service
names are unique per test, since every service shares the ``burrowmq.rpc`` exchange.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel

from burrowmq import NoRoute, NoServer, RemoteError, Router, RpcTimeout
from burrowmq.framework.builder import MessageBuilder
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

    async def test_call_by_handler(self, backend: Backend) -> None:
        """``call(handler, request)`` with the decorated handler calls its procedure and
        decodes the reply as the handler's return annotation."""
        name = service(backend)
        router = Router()

        @router.rpc(f"{name}.add")
        async def add(req: Sum) -> Sum:
            return Sum(a=req.a + req.b, b=0)

        app = backend.app(router)
        await app.start()
        assert await app.call(add, Sum(a=2, b=3), timeout=10) == Sum(a=5, b=0)

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
        assert caught.value.module == "builtins"

    async def test_remote_error_type_is_the_plain_class_name(self, backend: Backend) -> None:
        """An exception class defined in a function comes back by its plain name and module."""
        name = service(backend)
        router = Router()

        class OutOfStock(Exception):
            pass

        @router.rpc(f"{name}.reserve")
        async def reserve(sku: str) -> None:
            raise OutOfStock(f"no {sku} left")

        app = backend.app(router)
        await app.start()
        with pytest.raises(RemoteError) as caught:
            await app.call(f"{name}.reserve", "tea", timeout=10)
        assert (caught.value.type, caught.value.module) == ("OutOfStock", __name__)
        assert caught.value.remote_message == "no tea left"

    async def test_handler_timeout_is_a_remote_error(self, backend: Backend) -> None:
        """An RPC handler past its timeout= is cancelled; the caller gets HandlerTimeout."""
        name = service(backend)
        router = Router()

        @router.rpc(f"{name}.stall", timeout=0.2)
        async def stall(n: int) -> int:
            await asyncio.sleep(30)
            return n

        app = backend.app(router)
        await app.start()
        with pytest.raises(RemoteError) as caught:
            await app.call(f"{name}.stall", 1, timeout=10)
        assert (caught.value.type, caught.value.module) == ("HandlerTimeout", "burrowmq.exceptions")
        assert "timeout of 0.2s" in caught.value.remote_message

    async def test_local_request_and_reply_models(self, backend: Backend) -> None:
        """Request and return models defined in the test resolve and shape the reply."""
        name = service(backend)
        router = Router()

        class Ask(BaseModel):
            sku: str

        class Price(BaseModel):
            sku: str
            cents: int

        @router.rpc(f"{name}.price")
        async def price(req: Ask) -> Price:
            return Price(sku=req.sku, cents=250)

        app = backend.app(router)
        await app.start()
        reply = await app.call(f"{name}.price", Ask(sku="tea"), returns=Price, timeout=10)
        assert reply == Price(sku="tea", cents=250)

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


class TestNoServer:
    """A service whose queue is left but whose servers are gone fails fast."""

    async def test_stopped_service_is_no_server(self, backend: Backend) -> None:
        """After the only server stopped, a call raises NoServer (a NoRoute) well under a second."""
        name = service(backend)
        router = Router()

        @router.rpc(f"{name}.ping")
        async def ping(n: int) -> int:
            return n

        server = backend.app(router)
        client = backend.app()
        await server.start()
        await client.start()
        assert await client.call(f"{name}.ping", 1, timeout=10) == 1
        await server.stop()
        started = asyncio.get_running_loop().time()
        with pytest.raises(NoServer) as caught:
            await client.call(f"{name}.ping", 2, timeout=10)
        elapsed = asyncio.get_running_loop().time() - started
        assert isinstance(caught.value, NoRoute)
        assert elapsed < 1.0, f"NoServer after {elapsed:.2f}s"
        assert f"rpc.{name}" in str(caught.value)


class TestReplyQueues:
    """Replies go to plain queues only where a route opts in."""

    @pytest.mark.parametrize("opt_in", [False, True])
    async def test_plain_reply_queue(self, backend: Backend, opt_in: bool) -> None:
        """A request whose reply_to names a plain queue is answered there only with reply_queues=True; otherwise it is dropped without running."""
        name = service(backend)
        inbox = backend.names.queue("inbox")
        await backend.transport.declare_queue(inbox, arguments={"x-queue-type": "quorum"})
        runs: list[int] = []
        router = Router()

        @router.rpc(f"{name}.double", reply_queues=opt_in)
        async def double(n: int) -> int:
            runs.append(n)
            return n * 2

        app = backend.app(router)
        await app.start()
        body, props = MessageBuilder().message(21, correlation_id="c-1", reply_to=inbox)
        await backend.transport.publish("burrowmq.rpc", f"{name}.double", body, props)
        if opt_in:
            [reply] = await backend.take(inbox, 1)
            assert (reply.body, reply.properties.correlation_id) == (b"42", "c-1")
            assert runs == [21]
        else:
            # An ordinary call after it is answered: the plain-queue request was settled first.
            assert await app.call(f"{name}.double", 1, timeout=10) == 2
            assert runs == [1]
            assert await backend.transport.consumer_count(inbox) == 0
            with pytest.raises(TimeoutError):
                await backend.take(inbox, 1, timeout=0.5)
