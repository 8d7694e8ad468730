"""Unit tests for a message route's dispatcher and pipeline: middleware, poison messages
and redeliveries running alone, on a fake transport."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from burrowmq import App, Message, Reject, Retry, Router
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.idempotency import Idempotency
from burrowmq.framework.middleware import CallNext, Middleware, compose
from burrowmq.framework.transport import DeliveryCallback, Properties
from burrowmq.routing.consumers import ConsumerSettings, message_consumer
from burrowmq.routing.dispatch import Dispatcher
from burrowmq.routing.route import Route

pytestmark = pytest.mark.unit


@dataclass
class FakeDelivery:
    body: bytes
    properties: Properties = field(default_factory=Properties)
    exchange: str = ""
    routing_key: str = "q"
    redelivered: bool = False
    delivery_tag: int = 1
    stale: bool = False
    outcome: list[str] = field(default_factory=list)
    undecodable: dict[str, Any] = field(default_factory=dict)

    async def settle_pending(self) -> None:
        self.outcome.append("settle_pending")

    async def ack(self) -> bool:
        self.outcome.append("ack")
        return True

    async def nack(self, *, requeue: bool) -> bool:
        self.outcome.append(f"nack(requeue={requeue})")
        return True


class FakeSubscription:
    queue = "q"

    async def cancel(self) -> None:
        return None

    async def close(self) -> None:
        return None


class FakeTransport:
    """Just what a Consumer uses: consume, publish (confirmed at once), declare_queue."""

    def __init__(self) -> None:
        self.callback: DeliveryCallback | None = None
        self.published: list[tuple[str, str, bytes, Properties]] = []

    async def consume(self, queue: str, callback: DeliveryCallback, *, prefetch: int) -> Any:
        self.callback = callback
        return FakeSubscription()

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: Properties, **_: Any
    ) -> None:
        self.published.append((exchange, routing_key, body, properties))

    async def declare_queue(self, name: str, **_: Any) -> str:
        return name


def _route(handler: Any) -> Route:
    router = Router()
    router.consume("q", queue_options={}, retry=Retry(attempts=1))(handler)
    return router.routes[0]


async def _run(consumer: Dispatcher, transport: FakeTransport, *deliveries: FakeDelivery) -> None:
    await consumer.start()
    try:
        assert transport.callback is not None
        for delivery in deliveries:
            transport.callback(delivery)
        for _ in range(200):
            if all(d.outcome for d in deliveries):
                break
            await asyncio.sleep(0.005)
    finally:
        await consumer.stop(1.0)


def _consumer(
    route: Route,
    transport: FakeTransport,
    *,
    middleware: list[Middleware] | None = None,
    max_redeliveries: int | None = None,
    concurrency: int = 1,
    prefetch: int = 4,
) -> Dispatcher:
    settings = ConsumerSettings(
        transport=transport,  # type: ignore[arg-type]
        builder=MessageBuilder(),
        instance_id="i",
        retry=Retry(attempts=1),
        prefetch=prefetch,
        concurrency=concurrency,
        chain=compose(middleware or []),
        max_redeliveries=max_redeliveries,
    )
    return message_consumer(route, settings)


def _redelivery(count: int | None, body: bytes = b'{"n": 1}') -> FakeDelivery:
    headers = {} if count is None else {"x-delivery-count": count}
    return FakeDelivery(body, Properties(headers=headers, message_id="m1"), redelivered=True)


class TestMiddleware:
    async def test_wraps_the_handler_and_sees_the_message(self) -> None:
        """A middleware runs around the handler with the delivery's Message; the delivery is acked."""
        log: list[str] = []

        async def handler(data: dict[str, Any]) -> None:
            log.append(f"handler {data['n']}")

        async def around(message: Message, call_next: CallNext) -> Any:
            log.append(f"before {message.message_id} on {message.queue}")
            result = await call_next()
            log.append("after")
            return result

        transport = FakeTransport()
        delivery = FakeDelivery(b'{"n": 1}', Properties(message_id="m1"))
        await _run(_consumer(_route(handler), transport, middleware=[around]), transport, delivery)
        assert log == ["before m1 on q", "handler 1", "after"]
        assert delivery.outcome == ["ack"]

    async def test_reject_from_middleware_dead_letters(self) -> None:
        """A middleware raising Reject dead-letters the message like a handler would."""

        async def handler(data: dict[str, Any]) -> None:
            raise AssertionError("not reached")

        async def gate(message: Message, call_next: CallNext) -> Any:
            raise Reject("tenant is suspended")

        transport = FakeTransport()
        delivery = FakeDelivery(b"{}")
        await _run(_consumer(_route(handler), transport, middleware=[gate]), transport, delivery)
        assert delivery.outcome == ["ack"]
        [(exchange, _, _, props)] = transport.published
        assert exchange == "q.dlx"
        assert props.headers["x-exception-type"] == "Reject"
        assert props.headers["x-exception-message"] == "tenant is suspended"

    async def test_idempotency_drops_the_second_copy(self) -> None:
        """With Idempotency, a message id handled once is acked unhandled the second time."""
        calls: list[int] = []

        async def handler(data: dict[str, Any]) -> None:
            calls.append(data["n"])

        transport = FakeTransport()
        first = FakeDelivery(b'{"n": 1}', Properties(message_id="m1"), delivery_tag=1)
        again = FakeDelivery(b'{"n": 1}', Properties(message_id="m1"), delivery_tag=2)
        guard = Idempotency()
        consumer = _consumer(_route(handler), transport, middleware=[guard])
        await _run(consumer, transport, first, again)
        assert calls == [1]
        assert first.outcome == again.outcome == ["ack"]
        assert guard.dropped == 1

    def test_app_passes_its_middleware_to_consumers(self) -> None:
        """App(middleware=[...]) is validated and kept as a tuple."""

        async def handler(data: dict[str, Any]) -> None:
            return None

        async def mw(message: Message, call_next: CallNext) -> Any:
            return await call_next()

        router = Router()
        router.consume("q", queue_options={})(handler)
        app = App([router], url="memory://", middleware=[mw], max_redeliveries=3)
        assert app.middleware == (mw,)
        assert app.max_redeliveries == 3


class TestPoison:
    @pytest.mark.parametrize(("count", "limit"), [(11, 10), (1, 0), (4, 3)])
    async def test_over_the_limit_is_dead_lettered_unhandled(self, count: int, limit: int) -> None:
        """A redelivery whose x-delivery-count exceeds max_redeliveries goes to the DLX, never to the handler."""
        calls: list[int] = []

        async def handler(data: dict[str, Any]) -> None:
            calls.append(1)

        transport = FakeTransport()
        delivery = _redelivery(count)
        consumer = _consumer(_route(handler), transport, max_redeliveries=limit)
        await _run(consumer, transport, delivery)
        assert calls == []
        assert delivery.outcome == ["ack"]
        [(exchange, routing_key, body, props)] = transport.published
        assert (exchange, routing_key, body) == ("q.dlx", "q", b'{"n": 1}')
        assert props.headers["x-exception-type"] == "TooManyRedeliveries"
        assert f"redelivered {count} times" in props.headers["x-exception-message"]
        assert props.headers["x-original-queue"] == "q"
        assert props.headers["x-delivery-count"] == count
        assert props.message_id == "m1"

    @pytest.mark.parametrize(
        ("delivery", "limit"),
        [
            (_redelivery(10), 10),  # at the limit: one more try
            (_redelivery(None), 1),  # classic queue: no count
            (_redelivery(50), None),  # check turned off
            (FakeDelivery(b'{"n": 1}', Properties(headers={"x-delivery-count": 50})), 1),
        ],
    )
    async def test_within_the_limit_is_handled(
        self, delivery: FakeDelivery, limit: int | None
    ) -> None:
        """At or under the limit, without a count, with the check off or on a first delivery, the handler runs."""
        calls: list[int] = []

        async def handler(data: dict[str, Any]) -> None:
            calls.append(data["n"])

        transport = FakeTransport()
        consumer = _consumer(_route(handler), transport, max_redeliveries=limit)
        await _run(consumer, transport, delivery)
        assert calls == [1]
        # A redelivered message first gets the channel's pending acks sent (it may be the
        # one that crashed the last consumer); a first delivery does not.
        settle = ["settle_pending"] if delivery.redelivered else []
        assert delivery.outcome == [*settle, "ack"]
        assert transport.published == []


class TestRedeliveredRunAlone:
    async def test_redelivered_message_never_runs_beside_another(self) -> None:
        """A redelivered message waits for running handlers, runs alone, then the others resume."""
        running: set[int] = set()
        overlaps: list[tuple[int, frozenset[int]]] = []
        order: list[int] = []

        async def handler(data: dict[str, Any]) -> None:
            n = data["n"]
            if n == 99 and running:
                overlaps.append((n, frozenset(running)))
            if running & {99}:
                overlaps.append((n, frozenset(running)))
            running.add(n)
            await asyncio.sleep(0.01)
            running.discard(n)
            order.append(n)

        transport = FakeTransport()
        consumer = _consumer(_route(handler), transport, prefetch=8, concurrency=4)
        first = [FakeDelivery(f'{{"n": {n}}}'.encode(), delivery_tag=n) for n in range(1, 4)]
        suspect = _redelivery(None, b'{"n": 99}')
        later = [FakeDelivery(f'{{"n": {n}}}'.encode(), delivery_tag=n) for n in range(4, 7)]
        await _run(consumer, transport, *first, suspect, *later)
        assert sorted(order) == [1, 2, 3, 4, 5, 6, 99]
        assert overlaps == []
        assert order.index(99) == 3, "it waited for 1-3 and went before 4-6"
        assert suspect.outcome == ["settle_pending", "ack"]
