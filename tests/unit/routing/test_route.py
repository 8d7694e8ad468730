"""Route: a frozen handler-to-queue value and the topology it needs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from burrowmq.exceptions import ConfigurationError
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.topology.model import Binding, Exchange, Queue

pytestmark = pytest.mark.unit

INSTANCE = "inst01"


async def charge(payload: dict[str, Any]) -> None:
    """A handler."""


async def invalidate(payload: dict[str, Any]) -> None:
    """A broadcast handler."""


BILLING = Exchange(name="billing", type="direct")
CACHE = Exchange(name="cache", type="fanout")
CHARGE_QUEUE = Queue(
    name="billing.charge",
    arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "billing.charge.dlx"},
)


def named_route(**changes: Any) -> Route:
    fields: dict[str, Any] = {
        "exchange": BILLING,
        "bindings": (BindingKey("charge"), BindingKey("refund")),
    }
    fields.update(changes)
    return Route(charge, fields.pop("queue", CHARGE_QUEUE), **fields)


def per_instance_route(**changes: Any) -> Route:
    return Route(invalidate, None, exchange=CACHE, bindings=(BindingKey(""),), **changes)


class TestRouteValue:
    """A Route is a frozen, validated value."""

    def test_is_frozen(self) -> None:
        """A Route's fields cannot be reassigned."""
        route = named_route()
        with pytest.raises(dataclasses.FrozenInstanceError):
            route.prefetch = 3  # type: ignore[misc]

    def test_equal_routes_compare_equal(self) -> None:
        """Two routes built from the same parts are equal."""
        assert named_route() == named_route()

    def test_name_is_module_and_qualname(self) -> None:
        """``name`` is the handler's ``module.qualname``."""
        assert named_route().name == f"{__name__}.charge"

    def test_spec_is_resolved(self) -> None:
        """The handler is inspected once, when the route is made."""
        route = named_route()
        assert route.spec.func is charge

    @pytest.mark.parametrize(
        "changes",
        [
            {"prefetch": 0},
            {"prefetch": -5},
            {"prefetch": 1.5},
            {"prefetch": True},
            {"concurrency": 0},
            {"concurrency": "4"},
            {"retry": 3},
            {"retry": "Retry(attempts=3)"},
            {"timeout": 0},
            {"timeout": -1.0},
            {"timeout": True},
            {"timeout": "5"},
            {"timeout": float("inf")},
            {"timeout": float("nan")},
        ],
        ids=repr,
    )
    def test_bad_options(self, changes: dict[str, Any]) -> None:
        """Prefetch and concurrency must be positive ints, retry a Retry, timeout seconds."""
        with pytest.raises(ConfigurationError):
            named_route(**changes)

    def test_good_options(self) -> None:
        """Positive prefetch/concurrency and a Retry are accepted."""
        retry = Retry(attempts=2)
        route = named_route(prefetch=1, concurrency=8, retry=retry)
        assert (route.prefetch, route.concurrency, route.retry) == (1, 8, retry)

    def test_timeout_is_float_seconds(self) -> None:
        """``timeout=`` takes int or float seconds and keeps them as a float."""
        assert named_route().timeout is None
        assert named_route(timeout=2).timeout == 2.0
        assert isinstance(named_route(timeout=2).timeout, float)

    def test_no_queue_and_no_exchange(self) -> None:
        """A route with neither a queue nor an exchange has nothing to consume."""
        with pytest.raises(ConfigurationError, match="needs an exchange"):
            Route(charge, None)


class TestQueueName:
    """Which queue a route consumes."""

    def test_named_queue(self) -> None:
        """A named queue is the same in every instance."""
        route = named_route()
        assert route.queue_name("a") == route.queue_name("b") == "billing.charge"
        assert not route.per_instance

    def test_per_instance_queue_contains_instance_id(self) -> None:
        """A per-instance queue is ``<exchange>.<function>.<instance id>``."""
        route = per_instance_route()
        assert route.per_instance
        assert route.queue_name(INSTANCE) == f"cache.invalidate.{INSTANCE}"
        assert route.queue_name("a") != route.queue_name("b")


class TestDeadLetterBase:
    """Where a route's dead letters go."""

    @pytest.mark.parametrize(
        ("make", "base"),
        [
            (lambda: named_route(), "billing.charge"),
            (lambda: named_route(dead_letter="billing.failed"), "billing.failed"),
            (lambda: named_route(dead_letter=False), None),
            (lambda: named_route(dead_letter=True), "billing.charge"),
            (lambda: per_instance_route(), "cache.invalidate"),
            (lambda: per_instance_route(dead_letter="cache.failed"), "cache.failed"),
            (lambda: per_instance_route(dead_letter=False), None),
        ],
        ids=[
            "named",
            "named-custom",
            "named-off",
            "named-true",
            "per-instance",
            "per-instance-custom",
            "per-instance-off",
        ],
    )
    def test_dead_letter_base(self, make: Any, base: str | None) -> None:
        """The base is the given name, else the queue (or shared per-instance) name; None when off."""
        assert make().dead_letter_base() == base

    def test_per_instance_dead_letters_are_shared(self) -> None:
        """Every instance of a broadcast route dead-letters to one durable queue."""
        route = per_instance_route()
        assert INSTANCE not in (route.dead_letter_base() or "")


class TestTopology:
    """``Route.topology`` lists everything the route needs declared."""

    def test_named_queue_topology(self) -> None:
        """A named route declares its exchange, its queue, a binding per key and a DLX/DLQ."""
        topo = named_route().topology(INSTANCE)
        assert topo.exchanges == [
            Exchange(name="billing.charge.dlx", type="fanout"),
            BILLING,
        ]
        assert topo.queues == [
            Queue(name="billing.charge.dlq", arguments={"x-queue-type": "quorum"}),
            CHARGE_QUEUE,
        ]
        assert topo.bindings == [
            Binding(source="billing.charge.dlx", destination="billing.charge.dlq"),
            Binding(source="billing", destination="billing.charge", routing_key="charge"),
            Binding(source="billing", destination="billing.charge", routing_key="refund"),
        ]
        assert topo.policies == []

    def test_dead_letter_exchange_is_a_durable_fanout(self) -> None:
        """The dead-letter exchange is a durable fanout, so every dead letter reaches the DLQ."""
        dlx = named_route().topology(INSTANCE).exchange("billing.charge.dlx")
        assert dlx is not None
        assert (dlx.type, dlx.durable, dlx.auto_delete) == ("fanout", True, False)

    def test_dead_letter_queue_is_a_durable_quorum_queue(self) -> None:
        """The dead-letter queue is durable, shared and a quorum queue."""
        dlq = named_route().topology(INSTANCE).queue("billing.charge.dlq")
        assert dlq is not None
        assert dlq.durable and not dlq.exclusive and not dlq.auto_delete
        assert dlq.queue_type == "quorum"

    def test_dead_letter_binding(self) -> None:
        """The DLQ is bound to the DLX with an empty key."""
        topo = named_route().topology(INSTANCE)
        assert (
            Binding(source="billing.charge.dlx", destination="billing.charge.dlq") in topo.bindings
        )

    def test_custom_dead_letter_base(self) -> None:
        """``dead_letter="x"`` declares ``x.dlx`` and ``x.dlq``."""
        topo = named_route(dead_letter="billing.failed").topology(INSTANCE)
        assert topo.exchange("billing.failed.dlx") is not None
        assert topo.queue("billing.failed.dlq") is not None
        assert topo.exchange("billing.charge.dlx") is None

    def test_no_dead_letter(self) -> None:
        """``dead_letter=False`` declares no dead-letter exchange or queue."""
        topo = named_route(dead_letter=False).topology(INSTANCE)
        assert [e.name for e in topo.exchanges] == ["billing"]
        assert [q.name for q in topo.queues] == ["billing.charge"]
        assert all(not b.source.endswith(".dlx") for b in topo.bindings)

    def test_binding_arguments(self) -> None:
        """Header arguments of a binding key reach the binding."""
        route = named_route(
            exchange=Exchange(name="docs", type="headers"),
            bindings=(BindingKey("", {"x-match": "any", "format": "pdf"}),),
        )
        topo = route.topology(INSTANCE)
        assert (
            Binding(
                source="docs",
                destination="billing.charge",
                arguments={"x-match": "any", "format": "pdf"},
            )
            in topo.bindings
        )

    def test_per_instance_queue(self) -> None:
        """A per-instance queue is exclusive, auto-delete, non-durable and named after the instance."""
        topo = per_instance_route().topology(INSTANCE)
        queue = topo.queue(f"cache.invalidate.{INSTANCE}")
        assert queue is not None
        assert queue.exclusive and queue.auto_delete and not queue.durable
        assert INSTANCE in queue.name
        assert queue.arguments == {"x-dead-letter-exchange": "cache.invalidate.dlx"}

    def test_per_instance_topology(self) -> None:
        """A broadcast route declares its exchange, its own queue bound to it and a shared DLQ."""
        topo = per_instance_route().topology(INSTANCE)
        assert [e.name for e in topo.exchanges] == ["cache.invalidate.dlx", "cache"]
        assert [q.name for q in topo.queues] == [
            "cache.invalidate.dlq",
            f"cache.invalidate.{INSTANCE}",
        ]
        assert Binding(source="cache", destination=f"cache.invalidate.{INSTANCE}") in topo.bindings
        dlq = topo.queue("cache.invalidate.dlq")
        assert dlq is not None and dlq.durable and not dlq.exclusive

    def test_per_instance_without_dead_letter(self) -> None:
        """A broadcast route with ``dead_letter=False`` has no dead-letter argument."""
        topo = per_instance_route(dead_letter=False).topology(INSTANCE)
        queue = topo.queue(f"cache.invalidate.{INSTANCE}")
        assert queue is not None and queue.arguments == {}
        assert [e.name for e in topo.exchanges] == ["cache"]

    def test_instances_differ_only_in_their_own_queue(self) -> None:
        """Two instances share everything but their per-instance queue and its binding."""
        route = per_instance_route()
        one, two = route.topology("one"), route.topology("two")
        assert one.exchanges == two.exchanges
        assert one.queues[0] == two.queues[0]
        assert one.queues[1].name != two.queues[1].name

    def test_undeclared_queue_is_not_in_topology(self) -> None:
        """A queue declared elsewhere is consumed but not declared."""
        route = Route(charge, Queue(name="reports"), declare_queue=False)
        topo = route.topology(INSTANCE)
        assert topo.queue("reports") is None
        assert topo.queue("reports.dlq") is not None

    def test_origins_name_the_handler(self) -> None:
        """Each entity records the handler that needs it."""
        route = named_route()
        topo = route.topology(INSTANCE)
        assert topo.origin_of(BILLING) == f"handler {route.name}"
        assert topo.origin_of(CHARGE_QUEUE) == f"handler {route.name}"


class TestWithPrefix:
    """``with_prefix`` renames the route's declared queue."""

    def test_renames_named_queue(self) -> None:
        """The prefix goes before the queue's name; the rest of the queue is kept."""
        route = named_route().with_prefix("svc.")
        assert route.queue is not None
        assert route.queue.name == "svc.billing.charge"
        assert route.queue.queue_type == "quorum"
        assert route.exchange == BILLING
        assert route.bindings == named_route().bindings

    def test_returns_a_new_route(self) -> None:
        """The original route is left as it was."""
        original = named_route()
        original.with_prefix("svc.")
        assert original.queue == CHARGE_QUEUE

    def test_prefixed_topology_binds_the_prefixed_queue(self) -> None:
        """The topology of a prefixed route declares and binds the prefixed queue."""
        topo = named_route().with_prefix("svc.").topology(INSTANCE)
        assert topo.queue("svc.billing.charge") is not None
        assert topo.queue("billing.charge") is None
        assert {b.destination for b in topo.bindings if b.source == "billing"} == {
            "svc.billing.charge"
        }

    @pytest.mark.parametrize(
        ("make", "prefix"),
        [
            (lambda: named_route(), ""),
            (lambda: per_instance_route(), "svc."),
            (lambda: Route(charge, Queue(name="reports"), declare_queue=False), "svc."),
        ],
        ids=["empty-prefix", "per-instance", "undeclared"],
    )
    def test_unchanged(self, make: Any, prefix: str) -> None:
        """An empty prefix, a per-instance queue or an undeclared queue leave the route as is."""
        route = make()
        assert route.with_prefix(prefix) is route

    def test_prefixed_queue_dead_letter_exchange_is_declared(self) -> None:
        """A prefixed route's queue dead-letters to an exchange its topology declares."""
        route = named_route().with_prefix("svc.")
        assert route.queue is not None
        topo = route.topology(INSTANCE)
        assert topo.exchange(route.queue.arguments["x-dead-letter-exchange"]) is not None
