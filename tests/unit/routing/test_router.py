"""Router: decorators build the right Route, return the function, and refuse bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.message import Message
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.routing.router import Router
from burrowmq.topology.model import Exchange, Queue

pytestmark = pytest.mark.unit


class OrderPlaced(BaseModel):
    order_id: str
    total: float


async def charge(cmd: OrderPlaced) -> None:
    """A handler used by most tests."""


async def audit(event: OrderPlaced, message: Message) -> None:
    """A second handler, with a different name."""


def only_route(router: Router) -> Route:
    assert len(router.routes) == 1
    return router.routes[0]


Decorate = Callable[[Router], Callable[[Any], Any]]

DECORATORS: dict[str, Decorate] = {
    "direct": lambda r: r.direct("billing", "charge"),
    "direct-queue": lambda r: r.direct("billing", ["a", "b"], queue="billing.charge"),
    "fanout": lambda r: r.fanout("cache.invalidate"),
    "fanout-queue": lambda r: r.fanout("cache.invalidate", queue="cache.shared"),
    "topic": lambda r: r.topic("orders", "order.*.placed"),
    "headers": lambda r: r.headers("docs", {"format": "pdf"}),
    "consume-name": lambda r: r.consume("reports.generate"),
    "consume-queue": lambda r: r.consume(Queue(name="reports.generate")),
    "consume-options": lambda r: r.consume("reports.generate", queue_options={}),
}


class TestDecoratorsReturnTheFunction:
    """Decorators are sugar: the function stays as it was."""

    @pytest.mark.parametrize("decorate", DECORATORS.values(), ids=DECORATORS.keys())
    def test_returns_function_unchanged(self, decorate: Decorate) -> None:
        """The decorator returns the very function it was given and adds one route."""
        router = Router()
        assert decorate(router)(charge) is charge
        route = only_route(router)
        assert route.handler is charge

    async def test_decorated_function_is_still_callable(self) -> None:
        """A decorated handler can still be awaited directly, as in a unit test."""
        router = Router()
        calls: list[OrderPlaced] = []

        @router.direct("billing", "charge")
        async def handle(cmd: OrderPlaced) -> str:
            calls.append(cmd)
            return "done"

        assert await handle(OrderPlaced(order_id="1", total=2)) == "done"
        assert calls == [OrderPlaced(order_id="1", total=2)]

    def test_routes_keep_their_order(self) -> None:
        """``router.routes`` lists routes in the order they were added."""
        router = Router()
        router.direct("billing", "charge")(charge)
        router.topic("orders", "#")(audit)
        assert [r.handler for r in router.routes] == [charge, audit]

    def test_routes_is_a_tuple_snapshot(self) -> None:
        """``routes`` is an immutable snapshot, not the router's own list."""
        router = Router()
        routes = router.routes
        router.direct("billing", "charge")(charge)
        assert routes == ()
        assert isinstance(router.routes, tuple)


class TestBuiltRoute:
    """Each decorator builds a Route with the right exchange, queue and bindings."""

    @pytest.mark.parametrize(
        ("decorate", "exchange", "kind"),
        [
            (lambda r: r.direct("billing", "charge"), "billing", "direct"),
            (lambda r: r.fanout("cache"), "cache", "fanout"),
            (lambda r: r.topic("orders", "#"), "orders", "topic"),
            (lambda r: r.headers("docs", {"a": 1}), "docs", "headers"),
        ],
        ids=["direct", "fanout", "topic", "headers"],
    )
    def test_exchange_type(self, decorate: Decorate, exchange: str, kind: str) -> None:
        """The route's exchange has the decorator's type and is durable."""
        router = Router()
        decorate(router)(charge)
        assert only_route(router).exchange == Exchange(name=exchange, type=kind)

    @pytest.mark.parametrize(
        "decorate",
        [
            lambda r: r.direct("billing", "charge"),
            lambda r: r.topic("billing", "#"),
            lambda r: r.headers("billing", {"a": 1}),
        ],
        ids=["direct", "topic", "headers"],
    )
    def test_default_queue_name(self, decorate: Decorate) -> None:
        """Without ``queue=``, the queue is named ``<exchange>.<function name>``."""
        router = Router()
        decorate(router)(charge)
        route = only_route(router)
        assert route.queue is not None
        assert route.queue.name == "billing.charge"
        assert route.declare_queue

    def test_default_queue_name_with_exchange_object(self) -> None:
        """The default queue name uses the name of an ``Exchange`` given as such."""
        router = Router()
        router.direct(Exchange(name="billing", type="direct"), "charge")(audit)
        route = only_route(router)
        assert route.queue is not None and route.queue.name == "billing.audit"

    def test_named_queue(self) -> None:
        """``queue="name"`` names the queue."""
        router = Router()
        router.direct("billing", "charge", queue="payments")(charge)
        route = only_route(router)
        assert route.queue is not None and route.queue.name == "payments"

    def test_named_queue_is_a_durable_quorum_queue(self) -> None:
        """A named queue is durable, shared, and a quorum queue by default."""
        router = Router()
        router.direct("billing", "charge")(charge)
        queue = only_route(router).queue
        assert queue is not None
        assert queue.durable and not queue.exclusive and not queue.auto_delete
        assert queue.arguments["x-queue-type"] == "quorum"
        assert queue.queue_type == "quorum"

    @pytest.mark.parametrize(
        ("options", "queue_type"),
        [
            ({"type": "classic"}, "classic"),
            ({"type": "stream"}, "stream"),
            ({"arguments": {"x-queue-type": "classic"}}, "classic"),
            ({"type": "classic", "arguments": {"x-queue-type": "stream"}}, "stream"),
            ({}, "quorum"),
        ],
    )
    def test_queue_type_override(self, options: dict[str, Any], queue_type: str) -> None:
        """``queue_options`` ``type`` or an explicit ``x-queue-type`` overrides quorum."""
        router = Router()
        router.direct("billing", "charge", queue_options=options)(charge)
        queue = only_route(router).queue
        assert queue is not None
        assert queue.arguments["x-queue-type"] == queue_type
        assert queue.queue_type == queue_type

    def test_queue_options_arguments_are_kept(self) -> None:
        """Other ``queue_options`` arguments reach the queue."""
        router = Router()
        router.direct(
            "billing",
            "charge",
            queue_options={"arguments": {"x-max-length": 10}, "auto_delete": True},
        )(charge)
        queue = only_route(router).queue
        assert queue is not None
        assert queue.arguments["x-max-length"] == 10
        assert queue.auto_delete

    def test_exchange_options_are_kept(self) -> None:
        """``exchange_options`` reach the exchange."""
        router = Router()
        router.topic(
            "orders",
            "#",
            exchange_options={"arguments": {"alternate-exchange": "unrouted"}, "internal": True},
        )(charge)
        exchange = only_route(router).exchange
        assert exchange is not None
        assert exchange.arguments == {"alternate-exchange": "unrouted"}
        assert exchange.internal

    def test_dead_letter_exchange_defaults_to_queue_dlx(self) -> None:
        """A named queue dead-letters to ``<queue>.dlx``."""
        router = Router()
        router.direct("billing", "charge", queue="payments")(charge)
        route = only_route(router)
        assert route.queue is not None
        assert route.queue.arguments["x-dead-letter-exchange"] == "payments.dlx"
        assert route.dead_letter_base() == "payments"

    def test_dead_letter_false(self) -> None:
        """``dead_letter=False`` leaves the queue without a dead-letter exchange."""
        router = Router()
        router.direct("billing", "charge", dead_letter=False)(charge)
        route = only_route(router)
        assert route.queue is not None
        assert "x-dead-letter-exchange" not in route.queue.arguments
        assert route.dead_letter is False
        assert route.dead_letter_base() is None

    def test_dead_letter_name(self) -> None:
        """``dead_letter="base"`` dead-letters to ``<base>.dlx``."""
        router = Router()
        router.direct("billing", "charge", dead_letter="billing.failed")(charge)
        route = only_route(router)
        assert route.queue is not None
        assert route.queue.arguments["x-dead-letter-exchange"] == "billing.failed.dlx"
        assert route.dead_letter_base() == "billing.failed"

    def test_explicit_dead_letter_exchange_argument_wins(self) -> None:
        """An ``x-dead-letter-exchange`` given in ``queue_options`` is kept."""
        router = Router()
        router.direct(
            "billing", "charge", queue_options={"arguments": {"x-dead-letter-exchange": "mine"}}
        )(charge)
        queue = only_route(router).queue
        assert queue is not None
        assert queue.arguments["x-dead-letter-exchange"] == "mine"

    def test_direct_bindings(self) -> None:
        """A direct route binds its queue once per routing key."""
        router = Router()
        router.direct("billing", ["charge", "refund"])(charge)
        assert only_route(router).bindings == (BindingKey("charge"), BindingKey("refund"))

    def test_topic_bindings(self) -> None:
        """A topic route binds its queue once per pattern."""
        router = Router()
        router.topic("orders", ["order.*.placed", "order.#.cancelled"])(charge)
        assert only_route(router).bindings == (
            BindingKey("order.*.placed"),
            BindingKey("order.#.cancelled"),
        )

    def test_fanout_without_queue_is_per_instance(self) -> None:
        """A fanout route without ``queue=`` has no named queue: one per instance."""
        router = Router()
        router.fanout("cache.invalidate")(charge)
        route = only_route(router)
        assert route.queue is None
        assert route.per_instance
        assert route.bindings == (BindingKey(""),)
        assert route.queue_name("abc").endswith(".abc")

    def test_fanout_with_queue_is_shared(self) -> None:
        """A fanout route with ``queue=`` shares one durable queue between instances."""
        router = Router()
        router.fanout("cache.invalidate", queue="cache.shared")(charge)
        route = only_route(router)
        assert not route.per_instance
        assert route.queue is not None and route.queue.name == "cache.shared"
        assert route.queue.durable

    @pytest.mark.parametrize("match", ["all", "any", "all-with-x", "any-with-x"])
    def test_headers_arguments_include_x_match(self, match: Any) -> None:
        """A headers route binds with the headers plus ``x-match``."""
        router = Router()
        router.headers("docs", {"format": "pdf", "lang": "en"}, match=match)(charge)
        (binding,) = only_route(router).bindings
        assert binding.routing_key == ""
        assert dict(binding.arguments) == {"x-match": match, "format": "pdf", "lang": "en"}

    def test_headers_match_defaults_to_all(self) -> None:
        """Without ``match=``, headers must all match."""
        router = Router()
        router.headers("docs", {"format": "pdf"})(charge)
        (binding,) = only_route(router).bindings
        assert binding.arguments["x-match"] == "all"

    def test_route_options(self) -> None:
        """``retry``, ``prefetch`` and ``concurrency`` are kept on the route."""
        retry = Retry(attempts=5)
        router = Router()
        router.direct("billing", "charge", retry=retry, prefetch=10, concurrency=2)(charge)
        route = only_route(router)
        assert (route.retry, route.prefetch, route.concurrency) == (retry, 10, 2)

    def test_router_defaults(self) -> None:
        """A router's retry, prefetch and concurrency apply to routes that set none."""
        retry = Retry(attempts=2)
        router = Router(retry=retry, prefetch=7, concurrency=3)
        router.direct("billing", "charge")(charge)
        route = only_route(router)
        assert (route.retry, route.prefetch, route.concurrency) == (retry, 7, 3)

    def test_route_options_override_router_defaults(self) -> None:
        """A route's own options win over its router's."""
        own = Retry(attempts=9)
        router = Router(retry=Retry(attempts=2), prefetch=7, concurrency=3)
        router.direct("billing", "charge", retry=own, prefetch=1, concurrency=1)(charge)
        route = only_route(router)
        assert (route.retry, route.prefetch, route.concurrency) == (own, 1, 1)

    def test_unset_options_are_none(self) -> None:
        """Without router or route options, retry, prefetch and concurrency are left to the App."""
        router = Router()
        router.direct("billing", "charge")(charge)
        route = only_route(router)
        assert (route.retry, route.prefetch, route.concurrency) == (None, None, None)

    def test_amq_exchange_of_matching_type_is_allowed(self) -> None:
        """The predeclared ``amq.<type>`` exchange may be used by a route of that type."""
        router = Router()
        router.direct("amq.direct", "charge", queue="payments")(charge)
        exchange = only_route(router).exchange
        assert exchange is not None and exchange.name == "amq.direct"

    def test_amq_match_is_a_headers_exchange(self) -> None:
        """``amq.match``, the broker's standard headers exchange, may be used by headers()."""
        router = Router()
        router.headers("amq.match", {"format": "pdf"}, queue="render.pdf")(charge)
        exchange = only_route(router).exchange
        assert exchange is not None and exchange.name == "amq.match"


class TestConsume:
    """``consume`` binds a handler to a queue without an exchange."""

    def test_queue_by_name_is_not_declared(self) -> None:
        """A queue given by name is declared elsewhere: the route does not declare it."""
        router = Router()
        router.consume("reports.generate")(charge)
        route = only_route(router)
        assert route.queue is not None and route.queue.name == "reports.generate"
        assert not route.declare_queue
        assert route.exchange is None
        assert route.bindings == ()
        assert route.topology("i").queue("reports.generate") is None

    def test_queue_object_is_declared(self) -> None:
        """A ``Queue`` is declared as it is."""
        queue = Queue(name="reports.generate", arguments={"x-queue-type": "classic"})
        router = Router()
        router.consume(queue)(charge)
        route = only_route(router)
        assert route.queue == queue
        assert route.declare_queue
        assert route.topology("i").queue("reports.generate") == queue

    def test_queue_name_with_options_is_declared(self) -> None:
        """A name with ``queue_options`` is declared, quorum with a dead-letter exchange."""
        router = Router()
        router.consume("reports.generate", queue_options={"arguments": {"x-max-length": 5}})(charge)
        route = only_route(router)
        assert route.declare_queue
        assert route.queue is not None
        assert route.queue.arguments == {
            "x-max-length": 5,
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "reports.generate.dlx",
        }

    def test_empty_queue_options_still_declare(self) -> None:
        """``queue_options={}`` counts as given: the queue is declared."""
        router = Router()
        router.consume("reports.generate", queue_options={})(charge)
        assert only_route(router).declare_queue

    def test_undeclared_queue_is_not_prefixed(self) -> None:
        """A router prefix does not rename a queue declared elsewhere."""
        router = Router(prefix="svc.")
        router.consume("reports.generate")(charge)
        route = only_route(router)
        assert route.queue is not None and route.queue.name == "reports.generate"

    @pytest.mark.parametrize("queue", ["", None, 5])
    def test_bad_queue(self, queue: Any) -> None:
        """An empty or non-string queue name is refused."""
        with pytest.raises(ConfigurationError):
            Router().consume(queue)


class TestPrefix:
    """Prefixes rename the queues a router declares."""

    def test_router_prefix(self) -> None:
        """``Router(prefix=...)`` puts the prefix before declared queue names."""
        router = Router(prefix="svc.")
        router.direct("billing", "charge")(charge)
        router.topic("orders", "#", queue="audit")(audit)
        names = [r.queue.name for r in router.routes if r.queue is not None]
        assert names == ["svc.billing.charge", "svc.audit"]

    def test_prefix_does_not_rename_exchanges(self) -> None:
        """Exchanges keep their names under a prefix."""
        router = Router(prefix="svc.")
        router.direct("billing", "charge")(charge)
        exchange = only_route(router).exchange
        assert exchange is not None and exchange.name == "billing"

    def test_include_router_with_prefix(self) -> None:
        """``include_router(other, prefix=...)`` renames the included queues."""
        inner = Router()
        inner.direct("billing", "charge")(charge)
        inner.fanout("cache")(audit)
        outer = Router()
        outer.include_router(inner, prefix="svc.")
        charge_route, fanout_route = outer.routes
        assert charge_route.queue is not None and charge_route.queue.name == "svc.billing.charge"
        assert fanout_route.queue is None  # per-instance queues are not renamed

    def test_include_router_keeps_the_other_router(self) -> None:
        """Including a router leaves that router's own routes unchanged."""
        inner = Router()
        inner.direct("billing", "charge")(charge)
        Router().include_router(inner, prefix="svc.")
        route = only_route(inner)
        assert route.queue is not None and route.queue.name == "billing.charge"

    def test_route_added_after_inclusion_is_refused(self) -> None:
        """include_router() copies the routes it finds: adding to the included router later is an error naming the route."""
        inner = Router()
        inner.direct("billing", "charge")(charge)
        outer = Router()
        outer.include_router(inner)
        with pytest.raises(ConfigurationError, match=r"audit.*include_router"):
            inner.fanout("cache")(audit)
        assert len(outer.routes) == 1 and len(inner.routes) == 1

    def test_prefixes_compose(self) -> None:
        """An including router's prefix goes before the include prefix and the inner one."""
        inner = Router(prefix="c.")
        inner.direct("billing", "charge")(charge)
        outer = Router(prefix="a.")
        outer.include_router(inner, prefix="b.")
        route = only_route(outer)
        assert route.queue is not None and route.queue.name == "a.b.c.billing.charge"

    def test_include_without_prefix(self) -> None:
        """``include_router`` without a prefix copies the routes as they are."""
        inner = Router()
        inner.direct("billing", "charge")(charge)
        outer = Router()
        outer.include_router(inner)
        assert outer.routes == inner.routes

    def test_router_cannot_include_itself(self) -> None:
        """A router including itself is refused."""
        router = Router()
        with pytest.raises(ConfigurationError):
            router.include_router(router)

    def test_prefixed_queue_dead_letters_to_the_declared_exchange(self) -> None:
        """A prefixed queue's ``x-dead-letter-exchange`` is the dead-letter exchange its route declares."""
        inner = Router()
        inner.direct("billing", "charge")(charge)
        outer = Router()
        outer.include_router(inner, prefix="svc.")
        route = only_route(outer)
        assert route.queue is not None
        dlx = route.queue.arguments["x-dead-letter-exchange"]
        assert route.topology("i").exchange(dlx) is not None
        assert dlx == "svc.billing.charge.dlx"


class TestLocalAnnotations:
    """Handlers annotated with models local to the decorating function."""

    def test_including_later_elsewhere_keeps_the_resolved_handler(self) -> None:
        """A router with a local model, included with a prefix after its function returned,
        keeps the handler resolved at decoration (copies are not inspected again)."""

        def build() -> Router:
            class LocalEvent(BaseModel):
                n: int

            router = Router()

            @router.direct("billing", "charge", queue="local.q")
            async def handle(event: LocalEvent) -> None: ...

            return router

        outer = Router(retry=Retry(attempts=2))
        outer.include_router(build(), prefix="svc.")
        route = only_route(outer)
        assert route.queue is not None and route.queue.name == "svc.local.q"
        assert route.spec.payload_type.__name__ == "LocalEvent"
        assert route.spec.decode(b'{"n": 3}').n == 3


class TestRoutingKeyParameters:
    """``{name}`` words in routing keys: bindings, the plan, and errors at decoration."""

    def test_topic_binds_a_star_and_plans_the_parameter(self) -> None:
        """``logs.{level}.#`` binds ``logs.*.#``; the route's plan names ``level``."""
        router = Router()

        @router.topic("logs", "logs.{level}.#", queue="audit.logs")
        async def audit(line: str, level: str) -> None: ...

        route = only_route(router)
        assert route.bindings == (BindingKey("logs.*.#"),)
        assert route.parameters is not None and route.parameters.names == ("level",)
        assert route.parameters.extract("logs.warn.x") == {"level": "warn"}

    def test_routes_without_parameters_have_no_plan(self) -> None:
        """A plain pattern has no plan: its deliveries do no parameter work."""
        router = Router()
        router.topic("orders", "order.*.placed")(charge)
        assert only_route(router).parameters is None

    def test_parameter_the_handler_lacks(self) -> None:
        """A key naming a parameter the handler lacks is refused, naming both."""
        router = Router()
        with pytest.raises(ConfigurationError) as caught:

            @router.topic("logs", "logs.{level}.#")
            async def audit(line: str) -> None: ...

        assert "audit" in str(caught.value) and "'level'" in str(caught.value)

    def test_handler_parameter_nothing_fills(self) -> None:
        """A handler parameter without default that the key does not name is refused."""
        router = Router()
        with pytest.raises(ConfigurationError) as caught:

            @router.topic("logs", "logs.{level}.#")
            async def audit(line: str, level: str, region: str) -> None: ...

        assert "audit" in str(caught.value) and "'region'" in str(caught.value)
        assert "the key names level" in str(caught.value)

    def test_direct_key_binds_once_per_literal_value(self) -> None:
        """On a direct exchange a Literal parameter expands to one binding per value."""
        router = Router()

        @router.direct("orders", "order.{region}", queue="orders.regional")
        async def regional(body: str, region: Literal["eu", "us"]) -> None: ...

        route = only_route(router)
        assert route.bindings == (BindingKey("order.eu"), BindingKey("order.us"))
        assert route.parameters is not None
        assert route.parameters.extract("order.us") == {"region": "us"}

    def test_direct_key_with_an_open_type_is_refused(self) -> None:
        """A direct key cannot capture any word: a str parameter there is refused."""
        router = Router()
        with pytest.raises(ConfigurationError, match="finite set of values"):

            @router.direct("orders", "order.{region}")
            async def regional(body: str, region: str) -> None: ...

    def test_prefix_keeps_the_expanded_bindings(self) -> None:
        """Copying a direct route with parameters (a prefix) does not bind twice."""
        inner, outer = Router(), Router()

        @inner.direct("orders", "order.{region}", queue="q")
        async def regional(body: str, region: Literal["eu", "us"]) -> None: ...

        outer.include_router(inner, prefix="svc.")
        assert [b.routing_key for b in only_route(outer).bindings] == ["order.eu", "order.us"]

    def test_consume_routing_key_binds_nothing(self) -> None:
        """``consume(routing_key=...)`` only names the words of each delivery's key."""
        router = Router()

        @router.consume("reports", routing_key="report.{kind}")
        async def report(body: bytes, kind: str) -> None: ...

        route = only_route(router)
        assert route.bindings == ()
        assert route.parameters is not None and route.parameters.names == ("kind",)

    def test_consume_routing_key_without_parameters_is_refused(self) -> None:
        """A consume routing key naming no parameter would do nothing, so it is refused."""
        with pytest.raises(ConfigurationError, match="binds nothing"):
            Router().consume("reports", routing_key="report.daily")

    def test_malformed_parameter_is_refused(self) -> None:
        """``{name}`` glued to other text is refused when the decorator is made."""
        with pytest.raises(ConfigurationError, match="whole word"):
            Router().topic("logs", "logs.x{level}")


class TestIncludeRouterDefaults:
    """``include_router`` carries the defaults of both routers, innermost first."""

    def test_included_routes_take_the_including_routers_defaults(self) -> None:
        """Routes of an included router without settings take the including router's."""
        retry = Retry(attempts=4)
        inner = Router()
        inner.consume("q", queue_options={})(charge)
        outer = Router(retry=retry, prefetch=5, concurrency=6)
        outer.include_router(inner)
        route = only_route(outer)
        assert (route.retry, route.prefetch, route.concurrency) == (retry, 5, 6)

    def test_include_arguments_go_before_the_including_routers(self) -> None:
        """include_router(retry=, prefetch=, concurrency=) wins over the including router's defaults, and the inner router's own over both."""
        inner = Router(prefetch=1)
        inner.consume("q", queue_options={})(charge)
        outer = Router(retry=Retry(attempts=9), prefetch=50, concurrency=60)
        outer.include_router(inner, retry=Retry(attempts=2), concurrency=3)
        route = only_route(outer)
        assert (route.retry, route.prefetch, route.concurrency) == (Retry(attempts=2), 1, 3)

    def test_include_with_prefix_and_defaults(self) -> None:
        """A prefix and defaults given together both apply."""
        inner = Router()
        inner.direct("billing", "charge", queue="payments")(charge)
        outer = Router()
        outer.include_router(inner, prefix="svc.", prefetch=8)
        route = only_route(outer)
        assert route.queue is not None and route.queue.name == "svc.payments"
        assert route.prefetch == 8


class TestAddRoute:
    """``add_route`` is the primitive."""

    def test_add_route(self) -> None:
        """A Route added directly is listed as it is."""
        route = Route(charge, Queue(name="q"))
        router = Router()
        router.add_route(route)
        assert router.routes == (route,)

    def test_add_route_applies_the_prefix(self) -> None:
        """A Route added to a prefixed router gets the prefix."""
        router = Router(prefix="svc.")
        router.add_route(Route(charge, Queue(name="q")))
        route = only_route(router)
        assert route.queue is not None and route.queue.name == "svc.q"

    def test_add_route_applies_the_router_defaults(self) -> None:
        """A Route added directly takes the router's retry, prefetch and concurrency where it sets none."""
        retry = Retry(attempts=7)
        router = Router(retry=retry, prefetch=9, concurrency=2)
        router.add_route(Route(charge, Queue(name="q")))
        router.add_route(Route(audit, Queue(name="r"), prefetch=1, retry=Retry(attempts=1)))
        first, second = router.routes
        assert (first.retry, first.prefetch, first.concurrency) == (retry, 9, 2)
        assert (second.retry, second.prefetch, second.concurrency) == (Retry(attempts=1), 1, 2)

    def test_rpc_routes_take_no_default_retry(self) -> None:
        """An RPC route takes the router's prefetch and concurrency but never its retry."""
        router = Router(retry=Retry(attempts=7), prefetch=9, concurrency=2)

        @router.rpc("calc.add")
        async def add(n: int) -> int:
            return n

        route = only_route(router)
        assert (route.retry, route.prefetch, route.concurrency) == (None, 9, 2)

    @pytest.mark.parametrize("value", [charge, "route", None])
    def test_add_route_needs_a_route(self, value: Any) -> None:
        """Anything but a Route is refused."""
        with pytest.raises(ConfigurationError):
            Router().add_route(value)


def _sync_handler(payload: dict[str, Any]) -> None:
    """A synchronous function, which burrowmq cannot await."""


class TestInvalid:
    """Bad decorator input raises ConfigurationError when the route is made."""

    @pytest.mark.parametrize(
        "make",
        [
            lambda: Router().headers("docs", {"a": 1}, match="some"),
            lambda: Router().headers("docs", {"a": 1}, match="ALL"),
            lambda: Router().headers("docs", {}),
            lambda: Router().headers("docs", ["a"]),
            lambda: Router().headers("docs", {"x-match": "any", "a": 1}),
            lambda: Router().direct("", "key"),
            lambda: Router().topic("", "#"),
            lambda: Router().fanout(""),
            lambda: Router().headers("", {"a": 1}),
            lambda: Router().direct(None, "key"),
            lambda: Router().direct("amq.billing", "key"),
            lambda: Router().direct("amq.topic", "key"),
            lambda: Router().fanout("amq.direct"),
            lambda: Router().direct("billing", []),
            lambda: Router().topic("orders", []),
            lambda: Router().direct("billing", [1]),
            lambda: Router().direct("billing", "k" * 256),
            lambda: Router().direct(Exchange(name="billing", type="topic"), "key"),
            lambda: Router().direct(
                Exchange(name="billing"), "key", exchange_options={"durable": False}
            ),
            lambda: Router().direct("billing", "key", exchange_options={"colour": "red"}),
            lambda: Router().direct("billing", "key", exchange_options={"type": "topic"}),
        ],
        ids=[
            "bad-match",
            "upper-match",
            "empty-headers",
            "headers-not-mapping",
            "x-match-in-headers",
            "empty-direct-exchange",
            "empty-topic-exchange",
            "empty-fanout-exchange",
            "empty-headers-exchange",
            "none-exchange",
            "amq-prefix",
            "amq-other-type",
            "amq-fanout-with-direct",
            "no-routing-keys",
            "no-patterns",
            "non-string-key",
            "key-too-long",
            "exchange-of-other-type",
            "exchange-with-options",
            "unknown-exchange-option",
            "exchange-option-type",
        ],
    )
    def test_decorator_factory_refuses(self, make: Callable[[], Any]) -> None:
        """A bad exchange, key or header table is refused before any function is given."""
        with pytest.raises(ConfigurationError):
            make()

    @pytest.mark.parametrize(
        "decorate",
        [
            lambda r: r.direct("billing", "key", queue=""),
            lambda r: r.direct("billing", "key", queue="amq.mine"),
            lambda r: r.direct("billing", "key", queue_options={"durable": False}),
            lambda r: r.topic("orders", "#", queue="audit", queue_options={"durable": False}),
            lambda r: r.fanout("cache", queue="shared", queue_options={"durable": False}),
            lambda r: r.direct("billing", "key", queue_options={"exclusive": True}),
            lambda r: r.direct("billing", "key", queue_options={"colour": "red"}),
            lambda r: r.direct(
                "billing", "key", queue=Queue(name="q"), queue_options={"type": "classic"}
            ),
            lambda r: r.fanout("cache", queue_options={"type": "classic"}),
            lambda r: r.consume("reports", queue_options={"durable": False}),
            lambda r: r.consume("reports", queue_options={"name": "other"}),
            lambda r: r.consume("amq.reports", queue_options={}),
        ],
        ids=[
            "empty-queue",
            "amq-queue",
            "non-durable-direct",
            "non-durable-topic",
            "non-durable-fanout",
            "exclusive-option",
            "unknown-queue-option",
            "queue-with-options",
            "fanout-options-without-queue",
            "non-durable-consume",
            "consume-unknown-option",
            "consume-amq-queue",
        ],
    )
    def test_decorator_refuses(self, decorate: Decorate) -> None:
        """A bad queue or queue option is refused when the decorator meets the function."""
        router = Router()
        with pytest.raises(ConfigurationError):
            decorate(router)(charge)
        assert router.routes == ()

    def test_unknown_option_names_the_key(self) -> None:
        """The error about an unknown option names the key and the allowed ones."""
        with pytest.raises(
            ConfigurationError, match=r"queue_options got unknown keys \['colour'\]"
        ):
            Router().direct("billing", "key", queue_options={"colour": "red"})(charge)

    @pytest.mark.parametrize("decorate", DECORATORS.values(), ids=DECORATORS.keys())
    def test_sync_handler(self, decorate: Decorate) -> None:
        """A plain ``def`` handler is refused: handlers must be ``async def``."""
        router = Router()
        with pytest.raises(ConfigurationError, match="async"):
            decorate(router)(_sync_handler)
        assert router.routes == ()

    @pytest.mark.parametrize(
        ("option", "value"), [("prefetch", 0), ("concurrency", -1), ("prefetch", True)]
    )
    def test_bad_route_option(self, option: str, value: Any) -> None:
        """A prefetch or concurrency that is not a positive int is refused."""
        with pytest.raises(ConfigurationError, match=option):
            Router().direct("billing", "key", **{option: value})(charge)

    def test_queue_argument_typo_is_refused(self) -> None:
        """A misspelt queue argument in queue_options is refused with the likely name."""
        with pytest.raises(
            ConfigurationError, match=r"'x-max-lenght'.*did you mean x-max-length\?"
        ):
            Router().direct("billing", "key", queue_options={"arguments": {"x-max-lenght": 10}})(
                charge
            )

    def test_unknown_plugin_argument_is_kept(self) -> None:
        """An argument unlike any known name (a plugin's) is accepted as given."""
        router = Router()
        router.direct("billing", "key", queue_options={"arguments": {"x-my-plugin": 1}})(charge)
        queue = only_route(router).queue
        assert queue is not None and queue.arguments["x-my-plugin"] == 1

    def test_bad_retry(self) -> None:
        """``retry=`` must be a Retry."""
        with pytest.raises(ConfigurationError, match="Retry"):
            Router().direct("billing", "key", retry=3)(charge)  # type: ignore[arg-type]
