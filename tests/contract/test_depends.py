"""Contract: ``Annotated[T, Depends(factory)]`` handler parameters.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from burrowmq import App, Depends, Message, RemoteError, Retry, Router
from tests.contract.conftest import Backend
from tests.contract.test_routing import Seen

pytestmark = pytest.mark.contract


class Item(BaseModel):
    """An RPC request."""

    sku: str


class Price(BaseModel):
    """An RPC reply."""

    sku: str
    price: float
    source: str


def service(backend: Backend) -> str:
    """A unique service name, its queue registered for cleanup."""
    name = f"svc{uuid.uuid4().hex[:8]}"
    backend.names.add_queue(f"rpc.{name}")
    return name


class TestFactories:
    """Each kind of factory fills its parameter, once per delivery."""

    async def test_sync_async_and_generator_factories(self, backend: Backend) -> None:
        """A sync function, an async function and an async generator each fill a parameter;
        the generator is torn down after the handler."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen, events = Router(), Seen(), list[str]()

        def settings() -> str:
            return "dsn"

        async def client() -> str:
            return "client"

        async def session() -> AsyncIterator[str]:
            events.append("open")
            yield "session"
            events.append("close")
            seen.add(list(events))

        @router.direct(exchange, "k", queue=queue)
        async def handle(
            body: str,
            a: Annotated[str, Depends(settings)],
            b: Annotated[str, Depends(client)],
            c: Annotated[str, Depends(session)],
        ) -> None:
            events.append(f"handle:{body}:{a}:{b}:{c}")

        await backend.app(router).start()
        publisher = backend.app()
        await publisher.start()
        await publisher.publish(exchange, "m", routing_key="k")
        assert await seen.wait(1) == [["open", "handle:m:dsn:client:session", "close"]]

    async def test_nested_dependencies_run_once_per_delivery(self, backend: Backend) -> None:
        """A factory named twice in the graph runs once per delivery; factories take Message."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen, calls = Router(), Seen(), list[str]()

        def config(message: Message) -> str:
            calls.append(f"config:{message.routing_key}")
            return "cfg"

        async def db(cfg: Annotated[str, Depends(config)]) -> str:
            return f"db({cfg})"

        def cache(cfg: Annotated[str, Depends(config)]) -> str:
            return f"cache({cfg})"

        @router.topic(exchange, "k.{region}", queue=queue)
        async def handle(
            body: str,
            region: str,
            d: Annotated[str, Depends(db)],
            c: Annotated[str, Depends(cache)],
            again: Annotated[str, Depends(config)],
        ) -> None:
            seen.add((body, region, d, c, again))

        await backend.app(router).start()
        publisher = backend.app()
        await publisher.start()
        await publisher.publish(exchange, "one", routing_key="k.eu")
        await publisher.publish(exchange, "two", routing_key="k.us")
        assert sorted(await seen.wait(2)) == [
            ("one", "eu", "db(cfg)", "cache(cfg)", "cfg"),
            ("two", "us", "db(cfg)", "cache(cfg)", "cfg"),
        ]
        assert sorted(calls) == ["config:k.eu", "config:k.us"]

    async def test_a_factory_takes_the_running_app_and_routing_key_words(
        self, backend: Backend
    ) -> None:
        """A factory parameter annotated App gets the running app, so its lifespan state,
        and one named by a {word} of the routing key gets that word."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[dict[str, str]]:
            yield {"pool": "pool-1"}

        def pool(app: App, level: str) -> str:
            return f"{app.lifespan_state['pool']}:{level}"

        @router.topic(exchange, "logs.{level}", queue=queue)
        async def handle(body: str, p: Annotated[str, Depends(pool)]) -> None:
            seen.add(p)

        await backend.app(router, lifespan=lifespan).start()
        publisher = backend.app()
        await publisher.start()
        await publisher.publish(exchange, "m", routing_key="logs.warn")
        assert await seen.wait(1) == ["pool-1:warn"]


class TestFailures:
    """A dependency's failure is an attempt's failure; teardown sees the handler's."""

    async def test_teardown_gets_the_failure_in_reverse_order(self, backend: Backend) -> None:
        """Generators are torn down in the reverse order of setup, with the handler's
        exception thrown in, on every attempt; the message is then dead-lettered."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, events = Router(), list[str]()

        async def outer() -> AsyncIterator[str]:
            events.append("outer-open")
            try:
                yield "outer"
            except ValueError as exc:
                events.append(f"outer-saw:{exc}")
                raise

        def inner(o: Annotated[str, Depends(outer)]) -> Iterator[str]:
            events.append("inner-open")
            try:
                yield "inner"
            except ValueError:
                events.append("inner-saw")
                # swallowed here: the attempt still fails

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=2))
        async def handle(body: str, i: Annotated[str, Depends(inner)]) -> None:
            raise ValueError("boom")

        await backend.app(router).start()
        publisher = backend.app()
        await publisher.start()
        await publisher.publish(exchange, "m", routing_key="k")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert dead.properties.headers["x-exception-type"] == "ValueError"
        once = ["outer-open", "inner-open", "inner-saw", "outer-saw:boom"]
        assert events == once + once

    async def test_a_failing_factory_is_retried_then_dead_lettered(self, backend: Backend) -> None:
        """A factory that raises fails the attempt like the handler would: retried, then
        dead-lettered with its exception, and the handler never runs."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, attempts, handled = Router(), list[int](), list[str]()

        def flaky(message: Message) -> str:
            attempts.append(message.attempt)
            raise ConnectionError("db down")

        @router.direct(exchange, "k", queue=queue, retry=Retry(attempts=3))
        async def handle(body: str, db: Annotated[str, Depends(flaky)]) -> None:
            handled.append(body)

        await backend.app(router).start()
        publisher = backend.app()
        await publisher.start()
        await publisher.publish(exchange, "m", routing_key="k")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert dead.properties.headers["x-exception-type"] == "ConnectionError"
        assert attempts == [1, 2, 3]
        assert handled == []


class TestOverridesAndRpc:
    """Overrides replace factories; RPC handlers take dependencies too."""

    async def test_dependency_overrides_replace_a_factory(self, backend: Backend) -> None:
        """App(dependency_overrides=...) calls the replacement wherever the graph names
        the original, with the replacement's own parameters filled."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        async def real_db() -> AsyncIterator[str]:
            raise AssertionError("the real database is not used")
            yield "real"  # pragma: no cover

        def fake_db(message: Message) -> str:
            return f"fake:{message.routing_key}"

        @router.direct(exchange, "k", queue=queue)
        async def handle(body: str, db: Annotated[str, Depends(real_db)]) -> None:
            seen.add(db)

        await backend.app(router, dependency_overrides={real_db: fake_db}).start()
        publisher = backend.app()
        await publisher.start()
        await publisher.publish(exchange, "m", routing_key="k")
        assert await seen.wait(1) == ["fake:k"]

    async def test_rpc_handler_with_a_dependency_called_by_handler(self, backend: Backend) -> None:
        """An RPC handler's dependency is set up and torn down around each request, and
        ``app.call(handler, request)`` decodes the reply as the handler's return type."""
        name = service(backend)
        router, events = Router(), list[str]()

        async def prices() -> AsyncIterator[dict[str, float]]:
            events.append("open")
            try:
                yield {"tea": 2.5}
            finally:
                events.append("close")

        @router.rpc(f"{name}.quote")
        async def quote(req: Item, table: Annotated[dict[str, float], Depends(prices)]) -> Price:
            if req.sku not in table:
                raise KeyError(req.sku)
            return Price(sku=req.sku, price=table[req.sku], source="table")

        app = backend.app(router)
        await app.start()
        reply = await app.call(quote, Item(sku="tea"), timeout=10)
        assert reply == Price(sku="tea", price=2.5, source="table")
        with pytest.raises(RemoteError) as raised:
            await app.call(quote, Item(sku="gin"), timeout=10)
        assert raised.value.type == "KeyError"
        assert events == ["open", "close", "open", "close"]
        by_name: Any = await app.call(f"{name}.quote", Item(sku="tea"), timeout=10)
        assert by_name == {"sku": "tea", "price": 2.5, "source": "table"}
