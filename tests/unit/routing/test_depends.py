"""Depends: the dependency graph, inspected when a route is made and solved per delivery.

This module uses ``from __future__ import annotations``, so the factories' annotations
are strings that must resolve (the cycle below relies on it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import pytest

from burrowmq import App, ConfigurationError, Depends, Message, Router
from burrowmq.routing.depends import Injection
from burrowmq.routing.handler import Handler
from burrowmq.testing import TestClient

pytestmark = pytest.mark.unit


def cycle_a(b: Annotated[str, Depends(cycle_b)]) -> str:
    return b


def cycle_b(a: Annotated[str, Depends(cycle_a)]) -> str:
    return a


def get_db() -> str:
    return "real-db"


class TestInspection:
    """Mistakes in the graph are ConfigurationError when the route is made."""

    def test_a_cycle_is_refused_naming_the_handler_and_the_path(self) -> None:
        """A factory that depends on itself through another is a cycle, named in full."""

        async def handle(body: str, x: Annotated[str, Depends(cycle_a)]) -> None: ...

        with pytest.raises(
            ConfigurationError,
            match=r"handle: dependency cycle: .*cycle_a -> .*cycle_b -> .*cycle_a",
        ):
            Handler.inspect(handle)

    def test_a_factory_parameter_nothing_fills_is_refused(self) -> None:
        """A factory parameter that is no dependency, Message, App or key word is named."""

        def needs(thing: int) -> int:
            return thing

        async def handle(body: str, x: Annotated[int, Depends(needs)]) -> None: ...

        with pytest.raises(
            ConfigurationError, match=r"handle: dependency .*needs has parameter 'thing'"
        ):
            Handler.inspect(handle)

    def test_a_non_callable_factory_is_refused(self) -> None:
        """``Depends`` takes a callable."""
        with pytest.raises(ConfigurationError, match="callable"):
            Depends("get_db")  # type: ignore[arg-type]

    def test_handlers_without_dependencies_have_no_plan(self) -> None:
        """A handler that takes no dependency has no plan: its deliveries do no extra work."""

        async def handle(body: str, message: Message) -> None: ...

        assert Handler.inspect(handle).dependencies is None

    def test_a_routing_key_word_may_go_to_a_factory_only(self) -> None:
        """A ``{word}`` of the key may be taken by a factory rather than the handler."""
        router = Router()

        def region_db(region: str) -> str:
            return region

        @router.topic("ex", "k.{region}", queue="q")
        async def handle(body: str, db: Annotated[str, Depends(region_db)]) -> None: ...

        assert router.routes[0].spec.key_types == {"region": str}

    def test_a_default_depends_is_a_dependency(self) -> None:
        """``db: str = Depends(get_db)`` is the same as the Annotated form."""

        async def handle(body: str, db: str = Depends(get_db)) -> None: ...

        assert Handler.inspect(handle).dependencies is not None


class TestSolving:
    """A bound plan solves the graph per call."""

    async def test_use_cache_false_runs_the_factory_for_each_parameter(self) -> None:
        """Without the cache a factory runs once per parameter; with it, once."""
        counter: list[int] = []

        def tick() -> int:
            counter.append(1)
            return len(counter)

        async def handle(
            body: str,
            a: Annotated[int, Depends(tick, use_cache=False)],
            b: Annotated[int, Depends(tick, use_cache=False)],
        ) -> tuple[int, int]:
            return a, b

        plan = Handler.inspect(handle).dependencies
        assert plan is not None
        keyed, wants = plan.bind(Injection())
        assert not wants
        assert await keyed({}, "x", Message(body=b"")) == (1, 2)

    async def test_a_failing_teardown_fails_the_call(self) -> None:
        """An exception raised after the yield is the call's exception."""

        async def closing() -> AsyncIterator[str]:
            yield "v"
            raise OSError("close failed")

        async def handle(body: str, v: Annotated[str, Depends(closing)]) -> str:
            return v

        plan = Handler.inspect(handle).dependencies
        assert plan is not None
        keyed, _ = plan.bind(Injection())
        with pytest.raises(OSError, match="close failed"):
            await keyed({}, "x", Message(body=b""))

    async def test_a_generator_that_yields_twice_is_an_error(self) -> None:
        """A generator dependency yields exactly once."""

        def twice() -> Iterator[str]:
            yield "a"
            yield "b"

        async def handle(body: str, v: Annotated[str, Depends(twice)]) -> str:
            return v

        plan = Handler.inspect(handle).dependencies
        assert plan is not None
        keyed, _ = plan.bind(Injection())
        with pytest.raises(ConfigurationError, match="yielded more than once"):
            await keyed({}, "x", Message(body=b""))


class TestOverrides:
    """``TestClient(app, dependency_overrides=...)`` replaces factories for a test."""

    async def test_the_test_client_overrides_a_factory(self) -> None:
        """The override runs in place of the factory; the app itself keeps the real one."""
        router, seen = Router(), list[str]()

        @router.consume("orders", queue_options={})
        async def handle(body: str, db: Annotated[str, Depends(get_db)]) -> None:
            seen.append(db)

        def fake_db(message: Message) -> str:
            return f"fake:{message.routing_key}"

        app = App([router], url="memory://")
        async with TestClient(app, dependency_overrides={get_db: fake_db}) as client:
            await client.publish_and_wait("", "m", routing_key="orders")
        async with TestClient(app) as client:
            await client.publish_and_wait("", "m", routing_key="orders")
        assert seen == ["fake:orders", "real-db"]

    async def test_a_handler_parameter_annotated_app_gets_the_running_copy(self) -> None:
        """``App`` works on the handler itself too: it is the client's running copy."""
        router, seen = Router(), list[App]()

        @router.consume("orders", queue_options={})
        async def handle(body: str, app: App) -> None:
            seen.append(app)

        async with TestClient(App([router], url="memory://")) as client:
            await client.publish_and_wait("", "m", routing_key="orders")
        assert seen == [client.app]

    async def test_an_override_that_makes_a_cycle_is_refused_at_start(self) -> None:
        """An override's own graph is checked when the app starts."""
        router = Router()

        @router.consume("orders", queue_options={})
        async def handle(body: str, db: Annotated[str, Depends(get_db)]) -> None: ...

        client = TestClient(App([router]), dependency_overrides={get_db: cycle_a})
        with pytest.raises(ConfigurationError, match="dependency cycle"):
            await client.start()
