"""Contract: ``App(lifespan=...)`` is entered before consuming and exited after the drain.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from burrowmq import App, AppState, LifespanError, Router, StateError, TopologyError
from tests.contract.conftest import Backend
from tests.contract.test_routing import Seen

pytestmark = pytest.mark.contract


class TestLifespan:
    """The lifespan wraps the consuming life of the app, once."""

    async def test_entered_before_consuming_exited_after_the_drain(self, backend: Backend) -> None:
        """Handlers see what the lifespan yielded; an in-flight handler finishes before exit."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router, seen = Router(), Seen()
        events: list[tuple[Any, ...]] = []
        release = asyncio.Event()
        holder: dict[str, App] = {}

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
            events.append(("enter", app.state, len(app.health().consumers)))
            yield {"db": "pool-1"}
            events.append(("exit", app.state))

        @router.direct(exchange, "k", queue=queue)
        async def handle(body: str) -> None:
            seen.add(holder["app"].lifespan_state["db"])
            await release.wait()
            events.append(("handled", body))

        app = holder["app"] = backend.app(router, lifespan=lifespan)
        with pytest.raises(StateError):
            _ = app.lifespan_state
        await app.start()
        assert app.lifespan_state == {"db": "pool-1"}
        await app.publish(exchange, "m", routing_key="k")
        assert await seen.wait(1) == ["pool-1"]
        stopping = asyncio.create_task(app.stop())
        await asyncio.sleep(0.1)
        assert events == [("enter", AppState.STARTING, 0)]  # still draining
        release.set()
        await stopping
        assert events == [
            ("enter", AppState.STARTING, 0),
            ("handled", "m"),
            ("exit", AppState.STOPPING),
        ]
        with pytest.raises(StateError):
            _ = app.lifespan_state

    async def test_failed_start_exits_the_lifespan_once(self, backend: Backend) -> None:
        """A start that fails after the lifespan was entered exits it once, with the error."""
        router, events = Router(), list[str]()

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            events.append("enter")
            try:
                yield
            except Exception as exc:
                events.append(f"exit: {type(exc).__name__}")
                raise
            events.append("exit")

        @router.consume(backend.names.queue("missing"))  # declared nowhere: start fails
        async def handle(body: bytes) -> None: ...

        app = backend.app(router, lifespan=lifespan)
        with pytest.raises(TopologyError):
            await app.start()
        assert events == ["enter", "exit: TopologyError"]
        assert app.state is AppState.CLOSED
        await app.stop()
        assert len(events) == 2

    async def test_error_on_entry_fails_the_start_naming_the_lifespan(
        self, backend: Backend
    ) -> None:
        """A lifespan raising on entry fails start with LifespanError; nothing consumes."""
        exchange, queue = backend.names.exchange(), backend.names.queue()
        router = Router()

        @contextlib.asynccontextmanager
        async def open_pool(app: App) -> AsyncIterator[None]:
            raise ConnectionRefusedError("db at postgres://u:secret@db/x is down")
            yield

        @router.direct(exchange, "k", queue=queue)
        async def handle(body: str) -> None: ...

        app = backend.app(router, lifespan=open_pool)
        with pytest.raises(LifespanError) as caught:
            await app.start()
        error = caught.value
        assert error.lifespan.endswith("open_pool")
        assert "open_pool failed to start: ConnectionRefusedError" in str(error)
        assert "secret" not in str(error)
        assert isinstance(error.__cause__, ConnectionRefusedError)
        assert app.state is AppState.CLOSED

    async def test_error_on_exit_is_raised_after_closing(self, backend: Backend) -> None:
        """A lifespan raising on exit makes stop raise LifespanError; the app is closed."""

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[None]:
            yield
            raise RuntimeError("flush failed")

        app = backend.app(lifespan=lifespan)
        await app.start()
        with pytest.raises(LifespanError, match="failed on exit: RuntimeError: flush failed"):
            await app.stop()
        assert app.state is AppState.CLOSED
