"""Contract: routes of every exchange type, mandatory publishes and conflicting declarations.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any, Literal

import pytest
import structlog
from pydantic import BaseModel

from burrowmq import Message, Retry, Router, TopologyError, Unroutable
from tests.contract.conftest import Backend

pytestmark = pytest.mark.contract


class Seen:
    """What a handler received, with a wait for a number of messages."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 10.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


class TestExchangeTypes:
    """Decorated routes receive exactly what their exchange type routes to them."""

    async def test_direct(self, backend: Backend) -> None:
        """A direct route gets its routing key only."""
        exchange, queue = backend.names.exchange("billing"), backend.names.queue("charge")
        router, seen = Router(), Seen()

        @router.direct(exchange, "charge", queue=queue)
        async def charge(body: dict[str, int], message: Message) -> None:
            seen.add((message.routing_key, body["n"]))

        app = backend.app(router)
        await app.start()
        for n, key in enumerate(["charge", "refund", "charge"]):
            await app.publish(exchange, {"n": n}, routing_key=key)
        assert await seen.wait(2) == [("charge", 0), ("charge", 2)]

    async def test_topic(self, backend: Backend) -> None:
        """`*` is one word and `#` zero or more, as the broker routes them."""
        exchange, queue = backend.names.exchange("orders"), backend.names.queue("audit")
        router, seen = Router(), Seen()

        @router.topic(exchange, ["order.*.placed", "order.#.cancelled"], queue=queue)
        async def audit(body: str, message: Message) -> None:
            seen.add(message.routing_key)

        app = backend.app(router)
        await app.start()
        keys = ["order.eu.placed", "order.eu.x.placed", "order.cancelled", "order..placed",
                "order.eu.x.cancelled", "order.placed", "order.end.placed"]  # fmt: skip
        for key in keys:
            await app.publish(exchange, "e", routing_key=key)
        expected = ["order.eu.placed", "order.cancelled", "order..placed",
                    "order.eu.x.cancelled", "order.end.placed"]  # fmt: skip
        assert await seen.wait(len(expected)) == expected

    async def test_fanout_reaches_every_instance(self, backend: Backend) -> None:
        """Without a queue, each running instance gets its own copy of a broadcast."""
        exchange = backend.names.exchange("cache")
        backend.names.add_queue(f"{exchange}.invalidate.dlq")
        backend.names.exchanges.add(f"{exchange}.invalidate.dlx")
        seen = Seen()
        router = Router()

        @router.fanout(exchange)
        async def invalidate(body: str, message: Message) -> None:
            seen.add(message.queue)

        first, second = backend.app(router), backend.app(router)
        await first.start()
        await second.start()
        await first.publish(exchange, "key-1")
        queues = await seen.wait(2)
        assert len(set(queues)) == 2

    async def test_headers_all_and_any(self, backend: Backend) -> None:
        """x-match all needs every header, any needs one; other headers do not matter."""
        exchange = backend.names.exchange("docs")
        all_queue, any_queue = backend.names.queue("all"), backend.names.queue("any")
        router, seen = Router(), Seen()
        wanted = {"format": "pdf", "lang": "en"}

        @router.headers(exchange, wanted, match="all", queue=all_queue)
        async def render(body: int) -> None:
            seen.add(("all", body))

        @router.headers(exchange, wanted, match="any", queue=any_queue)
        async def index(body: int) -> None:
            seen.add(("any", body))

        app = backend.app(router)
        await app.start()
        samples = [{"format": "pdf", "lang": "en", "x": 1}, {"format": "pdf"}, {"lang": "de"}]
        for n, headers in enumerate(samples):
            await app.publish(exchange, n, headers=headers)
        assert sorted(await seen.wait(3)) == [("all", 0), ("any", 0), ("any", 1)]


class Level(str, enum.Enum):
    INFO = "info"
    ERROR = "error"


class TestRoutingKeyParameters:
    """``{name}`` words of a route's key reach the handler's parameters of those names."""

    async def test_topic_parameters_are_passed_and_validated(self, backend: Backend) -> None:
        """``logs.{level}.{shard}.#`` binds ``logs.*.*.#`` and passes an Enum and an int."""
        exchange, queue = backend.names.exchange("logs"), backend.names.queue("audit")
        router, seen = Router(), Seen()

        @router.topic(exchange, "logs.{level}.{shard}.#", queue=queue)
        async def audit(line: str, level: Level, shard: int) -> None:
            seen.add((line, level, shard))

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "disk full", routing_key="logs.error.3.db.primary")
        await app.publish(exchange, "started", routing_key="logs.info.12")
        await app.publish(exchange, "ignored", routing_key="metrics.cpu.1")
        assert await seen.wait(2) == [("disk full", Level.ERROR, 3), ("started", Level.INFO, 12)]

    async def test_invalid_word_is_dead_lettered_naming_the_parameter(
        self, backend: Backend
    ) -> None:
        """A word that fails validation is dead-lettered at once, like an invalid payload."""
        exchange, queue = backend.names.exchange("logs"), backend.names.queue("audit")
        router, seen = Router(), Seen()

        @router.topic(exchange, "logs.{level}.#", queue=queue, retry=Retry(attempts=3))
        async def audit(line: str, level: Level, message: Message) -> None:
            seen.add(message.attempt)

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "x", routing_key="logs.verbose.db")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        headers = dead.properties.headers
        assert headers["x-exception-type"] == "DecodeError"
        assert "routing key parameter 'level'" in headers["x-exception-message"]
        assert "'verbose'" in headers["x-exception-message"]
        assert headers["x-original-routing-key"] == "logs.verbose.db"
        assert seen.items == []

    async def test_direct_parameter_binds_each_value(self, backend: Backend) -> None:
        """A direct key's Literal parameter is bound once per value and passed its word."""
        exchange, queue = backend.names.exchange("orders"), backend.names.queue("regional")
        router, seen = Router(), Seen()

        @router.direct(exchange, "order.{region}", queue=queue)
        async def regional(body: int, region: Literal["eu", "us"]) -> None:
            seen.add((body, region))

        app = backend.app(router)
        await app.start()
        for n, key in enumerate(["order.eu", "order.apac", "order.us"]):
            await app.publish(exchange, n, routing_key=key)
        assert await seen.wait(2) == [(0, "eu"), (2, "us")]

    @pytest.mark.own_vhost
    async def test_parameters_survive_a_retry_through_the_broker(self, backend: Backend) -> None:
        """A retry parked in a delay queue comes back with its original key's words."""
        exchange, queue = backend.names.exchange("logs"), backend.names.queue("audit")
        backend.names.add_queue(f"{queue}.retry.200")
        router, seen = Router(), Seen()
        retry = Retry(attempts=2, wait=0.2, broker_delay_threshold=0.1)

        @router.topic(exchange, "logs.{level}", queue=queue, retry=retry)
        async def audit(line: str, level: str, message: Message) -> None:
            seen.add((message.attempt, level))
            if message.attempt == 1:
                raise ConnectionError("later")

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, "x", routing_key="logs.warn")
        assert await seen.wait(2) == [(1, "warn"), (2, "warn")]

    async def test_consume_with_a_routing_key_pattern(self, backend: Backend) -> None:
        """``consume(queue, routing_key=...)`` passes words; a key that does not fit is
        dead-lettered with the reason."""
        exchange, queue = backend.names.exchange("reports"), backend.names.queue("reports")
        router, seen = Router(), Seen()

        @router.consume(queue, queue_options={}, routing_key="report.{kind}")
        async def report(body: str, kind: str) -> None:
            seen.add((body, kind))

        app = backend.app(router)
        await app.start()
        await backend.transport.declare_exchange(exchange, "topic")
        await backend.transport.bind_queue(queue, exchange, "#")
        await app.publish(exchange, "q3", routing_key="report.quarterly")
        await app.publish(exchange, "odd", routing_key="something.else.entirely")
        assert await seen.wait(1) == [("q3", "quarterly")]
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert "does not match 'report.{kind}'" in dead.properties.headers["x-exception-message"]


class TestLocalModels:
    """Under ``from __future__ import annotations`` (this module), a model defined inside
    the decorating function resolves, as pydantic resolves it."""

    async def test_model_defined_in_the_test_validates_payloads(self, backend: Backend) -> None:
        """The local model decodes a good payload; a bad one is dead-lettered naming the field."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()

        class Shipment(BaseModel):
            order_id: str
            boxes: int

        @router.direct(exchange, "ship", queue=queue)
        async def ship(item: Shipment) -> None:
            seen.add(item)

        app = backend.app(router)
        await app.start()
        await app.publish(exchange, {"order_id": "o1", "boxes": 2}, routing_key="ship")
        await app.publish(exchange, {"order_id": "o2", "boxes": "many"}, routing_key="ship")
        assert await seen.wait(1) == [Shipment(order_id="o1", boxes=2)]
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert dead.properties.headers["x-exception-type"] == "DecodeError"
        assert "boxes" in dead.properties.headers["x-exception-message"]


class TestPublishing:
    """Mandatory publishes and the default exchange."""

    async def test_mandatory_without_binding_is_unroutable(self, backend: Backend) -> None:
        """A mandatory publish nobody is bound for raises Unroutable; without mandatory it is dropped."""
        exchange, queue = backend.names.exchange("x"), backend.names.queue()
        router = Router()

        @router.direct(exchange, "bound", queue=queue)
        async def handle(body: str) -> None: ...

        app = backend.app(router)
        await app.start()
        with pytest.raises(Unroutable) as caught:
            await app.publish(exchange, "m", routing_key="unbound", mandatory=True)
        assert caught.value.exchange == exchange
        await app.publish(exchange, "m", routing_key="unbound")
        await app.publish(exchange, "m", routing_key="bound", mandatory=True)

    async def test_unroutable_drop_is_warned_rate_limited(self, backend: Backend) -> None:
        """Without mandatory a message no queue is bound for is dropped, with one warning per key and minute."""
        exchange, queue = backend.names.exchange("x"), backend.names.queue()
        router = Router()

        @router.direct(exchange, "bound", queue=queue)
        async def handle(body: str) -> None: ...

        app = backend.app(router)
        await app.start()
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                await app.publish(exchange, "m", routing_key="unbound")
            await app.publish_many(exchange, ["a", "b"], routing_key="nowhere")
            await app.publish(exchange, "m", routing_key="bound")
        warned = [e for e in logs if e["event"] == "message_unroutable"]
        assert [(e["exchange"], e["routing_key"], e["dropped"]) for e in warned] == [
            (exchange, "unbound", 1),
            (exchange, "nowhere", 1),
        ]
        assert warned[0]["log_level"] == "warning"
        assert "mandatory=True" in warned[0]["hint"]

    async def test_default_exchange_reaches_queue_by_name(self, backend: Backend) -> None:
        """Publishing to "" with a queue's name as routing key reaches that queue."""
        queue = backend.names.queue("work")
        await backend.transport.declare_queue(queue, arguments={"x-queue-type": "quorum"})
        router, seen = Router(), Seen()

        @router.consume(queue)
        async def work(body: str) -> None:
            seen.add(body)

        app = backend.app(router)
        await app.start()
        await app.publish("", "hello", routing_key=queue, mandatory=True)
        assert await seen.wait(1) == ["hello"]


class TestDeclarations:
    """Declarations that conflict with what exists fail the same way on both transports."""

    async def test_conflicting_argument_is_named(self, backend: Backend) -> None:
        """A route redeclaring a queue with another x-max-length fails naming the argument."""
        queue = backend.names.queue("conflict")
        await backend.transport.declare_queue(
            queue,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": f"{queue}.dlx",
                "x-max-length": 10,
            },
        )
        router = Router()

        @router.consume(queue, queue_options={"arguments": {"x-max-length": 5}})
        async def work(body: str) -> None: ...

        with pytest.raises(TopologyError) as caught:
            await backend.app(router).start()
        assert caught.value.argument == "x-max-length"
        assert queue in str(caught.value.entity)

    async def test_consuming_an_undeclared_queue_fails(self, backend: Backend) -> None:
        """A route on a queue declared nowhere fails to start with TopologyError."""
        router = Router()

        @router.consume(backend.names.queue("nowhere"))
        async def work(body: str) -> None: ...

        with pytest.raises(TopologyError):
            await backend.app(router).start()
