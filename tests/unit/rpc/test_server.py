"""The RPC server's pieces that need no broker: routes, grouping, undeliverable replies."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from burrowmq import App, Queue, Retry, Router
from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.routing.consumers import ConsumerSettings
from burrowmq.routing.procedure import RPC_EXCHANGE
from burrowmq.rpc.server import rpc_servers

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def _settings(
    transport: Any = None, *, prefetch: int = 64, concurrency: int = 16
) -> ConsumerSettings:
    return ConsumerSettings(
        transport=transport,
        builder=MessageBuilder(),
        instance_id="i",
        retry=Retry(attempts=1),
        prefetch=prefetch,
        concurrency=concurrency,
    )


class TestRouterRpc:
    """router.rpc builds a route on the service queue."""

    def test_route_binds_service_queue_with_a_service_wildcard(self) -> None:
        """The route has a classic durable queue rpc.<service> bound with '<service>.*'."""
        router = Router()

        @router.rpc("pricing.quote")
        async def quote(n: int) -> int:
            return n

        (route,) = router.routes
        assert route.procedure == "pricing.quote"
        assert route.queue is not None
        assert route.queue.name == "rpc.pricing"
        assert route.queue.durable
        assert route.queue.arguments == {"x-queue-type": "classic"}
        assert route.exchange is not None
        assert (route.exchange.name, route.exchange.type) == (RPC_EXCHANGE, "topic")
        assert [b.routing_key for b in route.bindings] == ["pricing.*"]
        assert route.dead_letter_base() is None
        assert route.retry is None

    def test_queue_object_is_used_as_given(self) -> None:
        """A Queue passed as queue= (a quorum queue, say) is declared as it is."""
        router = Router()
        queue = Queue(name="rpc.ha", arguments={"x-queue-type": "quorum"})

        @router.rpc("ha.ping", queue=queue)
        async def ping(n: int) -> int:
            return n

        assert router.routes[0].queue == queue

    def test_bad_name_is_refused_at_decoration(self) -> None:
        """A procedure without a method is refused when decorating."""
        with pytest.raises(ConfigurationError):
            Router().rpc("nomethod")

    def test_methods_of_one_service_share_its_queue(self) -> None:
        """Two procedures of a service merge into one queue and one binding in the topology."""
        router = Router()

        @router.rpc("calc.add")
        async def add(n: int) -> int:
            return n

        @router.rpc("calc.sub")
        async def sub(n: int) -> int:
            return -n

        topology = App([router]).topology()
        assert [q.name for q in topology.queues] == ["rpc.calc"]
        assert [(b.source, b.routing_key) for b in topology.bindings] == [(RPC_EXCHANGE, "calc.*")]


class TestRpcServers:
    """One server per service queue; a procedure is served once."""

    def test_one_server_per_queue_with_largest_settings(self) -> None:
        """Routes of one service make one server whose prefetch/concurrency are the largest."""
        router = Router()

        @router.rpc("calc.add", concurrency=4)
        async def add(n: int) -> int:
            return n

        @router.rpc("calc.sub", concurrency=8, prefetch=20)
        async def sub(n: int) -> int:
            return n

        @router.rpc("other.ping")
        async def ping(n: int) -> int:
            return n

        servers = rpc_servers(router.routes, _settings())
        by_queue = {s.queue: s for s in servers}
        assert by_queue["rpc.calc"].procedures == ("calc.add", "calc.sub")
        assert by_queue["rpc.calc"].dispatcher.concurrency == 8
        assert by_queue["rpc.calc"].dispatcher.prefetch == 20
        assert by_queue["rpc.other"].dispatcher.concurrency == 16

    def test_same_procedure_twice_is_refused(self) -> None:
        """Two handlers for one procedure are a configuration error naming it."""
        router = Router()

        @router.rpc("calc.add")
        async def add(n: int) -> int:
            return n

        @router.rpc("calc.add")
        async def add_again(n: int) -> int:
            return n

        with pytest.raises(ConfigurationError, match=r"calc\.add"):
            rpc_servers(router.routes, _settings())


class _Delivery:
    """A request as a transport would hand it over, recording how it was settled."""

    def __init__(self, *, redelivered: bool) -> None:
        from burrowmq.framework.transport import Properties

        self.body = b"2"
        pid = base64.b64encode(bytes([131, 88, 119, 9]) + b"reply@123" + bytes(12)).decode()
        self.properties = Properties(
            message_id="req-1",
            correlation_id="req-1",
            reply_to=f"amq.rabbitmq.reply-to.{pid}.a2V5",
        )
        self.undecodable: dict[str, Any] = {}
        self.exchange = RPC_EXCHANGE
        self.routing_key = "calc.double"
        self.redelivered = redelivered
        self.delivery_tag = 1
        self.stale = False
        self.outcome: list[str] = []

    async def settle_pending(self) -> None:
        return None

    async def ack(self) -> bool:
        self.outcome.append("ack")
        return True

    async def nack(self, *, requeue: bool) -> bool:
        self.outcome.append(f"nack(requeue={requeue})")
        return True


class _LosingTransport:
    """Publishing a reply loses the connection (as RabbitMQ 3.x does for some reply-to keys)."""

    def __init__(self) -> None:
        self.attempts = 0

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        from burrowmq.exceptions import ConnectionLost

        self.attempts += 1
        raise ConnectionLost("connection closed by the broker (541)")


class TestUndeliverableReplies:
    async def test_request_whose_reply_lost_the_connection_is_dropped_when_it_returns(
        self,
    ) -> None:
        """A request whose reply publish lost the connection is not run again on redelivery: it is acked and dropped."""
        router = Router()
        runs: list[int] = []

        @router.rpc("calc.double")
        async def double(n: int) -> int:
            runs.append(n)
            return n * 2

        transport = _LosingTransport()
        [server] = rpc_servers(router.routes, _settings(transport, prefetch=4, concurrency=1))
        first = _Delivery(redelivered=False)
        await server.handle(first)  # type: ignore[arg-type]
        assert runs == [2]
        assert transport.attempts == 1
        again = _Delivery(redelivered=True)
        await server.handle(again)  # type: ignore[arg-type]
        assert runs == [2], "not run a second time"
        assert transport.attempts == 1, "no second reply that would drop the connection again"
        assert again.outcome == ["ack"]


class TestRepliesInKind:
    """An RPC server answers in the request's codec and compression."""

    def test_msgpack_gzip_request_gets_a_msgpack_gzip_reply(self) -> None:
        """A JSON result becomes msgpack, gzip-compressed, for a msgpack gzip request."""
        import gzip

        import msgpack

        from burrowmq.framework.builder import MessageBuilder
        from burrowmq.framework.transport import Properties
        from burrowmq.rpc.server import Replies

        replies = Replies(None, MessageBuilder(), tracebacks=False)  # type: ignore[arg-type]
        request = Properties(content_type="application/msgpack", content_encoding="gzip")
        body, content_type, encoding = replies.in_kind(b'{"a":1}', request)
        assert (msgpack.unpackb(gzip.decompress(body)), content_type, encoding) == (
            {"a": 1},
            "application/msgpack",
            "gzip",
        )
        plain = replies.in_kind(b'{"a":1}', Properties(content_type="application/json"))
        assert plain == (b'{"a":1}', "application/json", None)
