"""App without a broker: options, routers, the merged topology and lifecycle misuse."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from burrowmq import (
    App,
    AppState,
    BrokerUnreachable,
    ConfigurationError,
    Exchange,
    Queue,
    Router,
    StateError,
    Topology,
    TopologyError,
)
from burrowmq.routing.retry import DEFAULT_RETRY, Retry

pytestmark = pytest.mark.unit

# Nothing listens on port 1: an app that tried to connect would fail with BrokerUnreachable.
NOWHERE = "amqp://guest:guest@127.0.0.1:1/"


class Event(BaseModel):
    name: str


async def handle_a(event: Event) -> None:
    """A handler."""


async def handle_b(event: Event) -> None:
    """Another handler."""


def make_app(*routers: Router, **kwargs: Any) -> App:
    kwargs.setdefault("url", NOWHERE)
    kwargs.setdefault("connect_timeout", 0.5)
    return App(list(routers), **kwargs)


def conflicting_routers() -> list[Router]:
    """Two routers using exchange 'events', one as direct and one as topic."""
    first, second = Router(), Router()
    first.direct("events", "created")(handle_a)
    second.topic("events", "created.#")(handle_b)
    return [first, second]


class TestOptions:
    """Constructor options are checked at once."""

    @pytest.mark.parametrize("option", ["prefetch", "concurrency"])
    @pytest.mark.parametrize("value", [0, -1, True, False, 1.5, "8", None])
    def test_bad_prefetch_and_concurrency(self, option: str, value: Any) -> None:
        """Prefetch and concurrency must be positive ints."""
        with pytest.raises(ConfigurationError, match=option):
            make_app(**{option: value})

    def test_defaults(self) -> None:
        """A new app has prefetch 64, concurrency 16 and the default retry."""
        app = make_app()
        assert (app.prefetch, app.concurrency, app.retry) == (64, 16, DEFAULT_RETRY)
        assert app.name == "burrowmq"

    def test_options_are_kept(self) -> None:
        """Given options are kept."""
        retry = Retry(attempts=7)
        app = make_app(name="billing", retry=retry, prefetch=3, concurrency=2)
        assert (app.name, app.retry, app.prefetch, app.concurrency) == ("billing", retry, 3, 2)

    @pytest.mark.parametrize(
        "url",
        ["http://host/", [], ["memory://", "amqp://host/"]],
        ids=["bad-scheme", "empty-list", "mixed"],
    )
    def test_bad_url(self, url: Any) -> None:
        """A bad URL is refused when the app is made."""
        with pytest.raises(ConfigurationError):
            App(url=url)

    def test_bad_env_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without ``url=``, a bad ``$BURROWMQ_URL`` is refused when the app is made."""
        monkeypatch.setenv("BURROWMQ_URL", "redis://host/")
        with pytest.raises(ConfigurationError, match="redis"):
            App()

    def test_lifespan_must_be_callable(self) -> None:
        """A lifespan that is not callable is refused when the app is made."""
        with pytest.raises(ConfigurationError, match="lifespan"):
            make_app(lifespan=object())

    async def test_lifespan_must_return_an_async_context_manager(self) -> None:
        """A lifespan returning something else fails the start with a clear error."""

        def lifespan(app: App) -> Any:
            return "not a context manager"

        app = App(url="memory://", lifespan=lifespan)
        with pytest.raises(ConfigurationError, match="not an async context manager"):
            await app.start()
        assert app.state.value == "closed"

    def test_lifespan_state_without_a_lifespan(self) -> None:
        """Reading lifespan_state of an app without a lifespan says it has none."""
        with pytest.raises(StateError, match="has no lifespan"):
            _ = make_app().lifespan_state

    def test_instance_ids_differ(self) -> None:
        """Each app gets its own instance id."""
        assert make_app().instance_id != make_app().instance_id


class TestRouters:
    """Routers given to the App."""

    @pytest.mark.parametrize("router", ["router", object(), None, 5], ids=repr)
    def test_routers_must_be_routers(self, router: Any) -> None:
        """Anything but a Router in ``routers=`` is refused."""
        with pytest.raises(ConfigurationError, match="Router"):
            App([router], url=NOWHERE)

    def test_single_router(self) -> None:
        """A single Router may be given instead of a list."""
        router = Router()
        router.direct("billing", "charge")(handle_a)
        app = App(router, url=NOWHERE)  # type: ignore[arg-type]
        assert [r.handler for r in app.routes] == [handle_a]

    def test_routes_of_every_router(self) -> None:
        """The app serves every route of every router, in order."""
        first, second = Router(), Router()
        first.direct("billing", "charge")(handle_a)
        second.topic("orders", "#")(handle_b)
        app = make_app(first, second)
        assert [r.handler for r in app.routes] == [handle_a, handle_b]

    def test_include_router_with_prefix(self) -> None:
        """``app.include_router`` adds routes before start, with a prefix."""
        router = Router()
        router.direct("billing", "charge")(handle_a)
        app = make_app()
        app.include_router(router, prefix="svc.")
        (route,) = app.routes
        assert route.queue is not None and route.queue.name == "svc.billing.handle_a"

    def test_routes_added_after_the_app_was_made_are_served(self) -> None:
        """The app reads its routers' routes when it starts, so later decorators count."""
        router = Router()
        app = make_app(router)
        router.direct("billing", "charge")(handle_a)
        assert [r.handler for r in app.routes] == [handle_a]

    async def test_route_added_while_running_is_refused(self) -> None:
        """A route added to a router whose App runs is an error naming it, not a silent drop."""
        router = Router()
        router.direct("billing", "charge", queue_options={})(handle_a)
        app = make_app(router, url=f"memory://{uuid.uuid4().hex}")
        async with app:
            with pytest.raises(ConfigurationError, match=r"handle_b.*App serving this router"):
                router.topic("orders", "#")(handle_b)
            assert [r.handler for r in app.routes] == [handle_a]
        router.topic("orders", "#")(handle_b)  # that app is closed: the router is free again
        assert len(router.routes) == 2


class TestTopology:
    """``app.topology()`` merges every route's needs and the given topology."""

    def test_merges_routes(self) -> None:
        """Exchanges, queues and bindings of every route are in the merged topology."""
        first, second = Router(), Router()
        first.direct("billing", "charge")(handle_a)
        second.topic("orders", "order.#", queue="audit")(handle_b)
        topo = make_app(first, second).topology()
        assert {e.name for e in topo.exchanges} == {
            "billing",
            "orders",
            "billing.handle_a.dlx",
            "audit.dlx",
        }
        assert {q.name for q in topo.queues} == {
            "billing.handle_a",
            "billing.handle_a.dlq",
            "audit",
            "audit.dlq",
        }
        assert {(b.source, b.destination, b.routing_key) for b in topo.bindings} >= {
            ("billing", "billing.handle_a", "charge"),
            ("orders", "audit", "order.#"),
        }

    def test_routes_sharing_an_exchange(self) -> None:
        """Two routes declaring the same exchange alike share it."""
        router = Router()
        router.topic("orders", "a.#", queue="qa")(handle_a)
        router.topic("orders", "b.#", queue="qb")(handle_b)
        topo = make_app(router).topology()
        assert [e.name for e in topo.exchanges].count("orders") == 1

    def test_merges_given_topology(self) -> None:
        """A Topology given to the App is merged with the routes' needs."""
        given = Topology(queues=[Queue(name="reports", arguments={"x-queue-type": "quorum"})])
        router = Router()
        router.consume("reports")(handle_a)
        topo = make_app(router, topology=given).topology()
        assert topo.queue("reports") == given.queues[0]
        assert topo.queue("reports.dlq") is not None

    def test_undeclared_queue_is_not_in_topology(self) -> None:
        """A queue consumed by name and declared nowhere is not declared by the app."""
        router = Router()
        router.consume("reports")(handle_a)
        assert make_app(router).topology().queue("reports") is None

    def test_conflict_between_routes(self) -> None:
        """One exchange declared direct by one route and topic by another is a TopologyError."""
        with pytest.raises(TopologyError) as info:
            make_app(*conflicting_routers()).topology()
        assert info.value.entity == "exchange 'events'"
        assert info.value.argument == "type"
        assert "handle_a" in str(info.value) and "handle_b" in str(info.value)

    def test_conflict_with_given_topology(self) -> None:
        """A route that contradicts the given topology is a TopologyError."""
        given = Topology(exchanges=[Exchange(name="events", type="fanout")])
        router = Router()
        router.direct("events", "created")(handle_a)
        with pytest.raises(TopologyError, match="exchange 'events'"):
            make_app(router, topology=given).topology()

    async def test_conflict_is_found_before_connecting(self) -> None:
        """``start`` raises the TopologyError before it tries to reach the broker."""
        app = make_app(*conflicting_routers())
        with pytest.raises(TopologyError) as info:
            await app.start()
        assert not isinstance(info.value, BrokerUnreachable)
        assert app.state is AppState.CLOSED

    @pytest.mark.parametrize(
        "decorate",
        [
            lambda r: (
                r.direct("billing", "a", queue="shared"),
                r.direct("billing", "b", queue="shared"),
            ),
            lambda r: (
                r.direct("billing", "a", queue="shared"),
                r.topic("orders", "#", queue="shared"),
            ),
            lambda r: (r.consume("shared"), r.consume("shared")),
        ],
        ids=["two-direct", "direct-and-topic", "two-consume"],
    )
    def test_two_routes_consuming_one_queue(self, decorate: Any) -> None:
        """Two handlers on one queue are refused: each delivery would reach only one."""
        router = Router()
        first, second = decorate(router)
        first(handle_a)
        second(handle_b)
        with pytest.raises(ConfigurationError, match="'shared' is consumed by two handlers"):
            make_app(router).topology()

    async def test_two_routes_consuming_one_queue_refused_before_connecting(self) -> None:
        """``start`` refuses two handlers on one queue before it tries to reach the broker."""
        router = Router()
        router.consume("shared")(handle_a)
        router.consume("shared")(handle_b)
        app = make_app(router)
        with pytest.raises(ConfigurationError):
            await app.start()
        assert app.state is AppState.CLOSED

    def test_per_instance_queues_are_named_for_the_app(self) -> None:
        """A fanout route without a queue gets a queue named after this app's instance."""
        router = Router()
        router.fanout("cache")(handle_a)
        app = make_app(router)
        names = [q.name for q in app.topology().queues]
        assert f"cache.handle_a.{app.instance_id}" in names


class TestLifecycle:
    """The lifecycle state gives precise errors on misuse."""

    def test_state_is_new(self) -> None:
        """A freshly made app is new."""
        assert make_app().state is AppState.NEW
        assert AppState.NEW.value == "new"

    def test_transport_before_start(self) -> None:
        """A new app has no transport yet."""
        with pytest.raises(StateError):
            _ = make_app().transport

    async def test_publish_before_start(self) -> None:
        """Publishing before the app runs raises StateError."""
        app = make_app()
        with pytest.raises(StateError, match="publish"):
            await app.publish("orders", {"a": 1}, routing_key="x")

    async def test_publish_after_stop(self) -> None:
        """Publishing after the app closed raises StateError."""
        app = make_app()
        await app.stop()
        with pytest.raises(StateError, match="closed"):
            await app.publish("orders", {"a": 1})

    async def test_stop_new_app(self) -> None:
        """Stopping an app that never started closes it, twice is fine."""
        app = make_app()
        await app.stop()
        await app.stop()
        assert app.state is AppState.CLOSED

    def test_use_url_when_new(self) -> None:
        """A new app accepts another URL or list of URLs."""
        app = make_app()
        app.use_url("amqp://other:5672/")
        app.use_url(["amqp://a/", "amqp://b/"])
        assert app.state is AppState.NEW

    @pytest.mark.parametrize("url", ["http://host/", [], ["memory://", "amqp://a/"]], ids=repr)
    def test_use_url_checks_the_url(self, url: Any) -> None:
        """``use_url`` refuses a bad URL."""
        with pytest.raises(ConfigurationError):
            make_app().use_url(url)

    async def test_use_url_then_start(self) -> None:
        """``use_url`` decides where ``start`` connects: here the in-process transport."""
        app = make_app()
        app.use_url(f"memory://{uuid.uuid4().hex}")
        async with app:
            assert app.state is AppState.RUNNING
            assert app.transport.description.startswith("memory://")
        assert app.state is AppState.CLOSED

    @pytest.mark.parametrize(
        "misuse",
        [
            lambda app: app.use_url("amqp://other/"),
            lambda app: app.include_router(Router()),
        ],
        ids=["use_url", "include_router"],
    )
    async def test_configuration_refused_while_running(self, misuse: Any) -> None:
        """The URL and routes cannot change while the app runs."""
        async with make_app(url=f"memory://{uuid.uuid4().hex}") as app:
            with pytest.raises(StateError, match="running"):
                misuse(app)

    async def test_start_while_running(self) -> None:
        """A running app cannot be started again."""
        async with make_app(url=f"memory://{uuid.uuid4().hex}") as app:
            with pytest.raises(StateError, match="running"):
                await app.start()

    async def test_unreachable_broker(self) -> None:
        """With a valid topology and no broker, ``start`` raises BrokerUnreachable."""
        app = make_app()
        with pytest.raises(BrokerUnreachable):
            await app.start()
        assert app.state is AppState.CLOSED
