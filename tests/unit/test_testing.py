"""burrowmq.testing: the test client, captures, dead letters and waiting for idleness."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from burrowmq import TLS, App, Idempotency, Message, MsgPackCodec, Retry, Router, Topology
from burrowmq.config import AppConfig
from burrowmq.framework.instrument import Instrument
from burrowmq.framework.transport import Properties
from burrowmq.testing import MemoryBroker, MemoryTransport, TestClient, pending_work, wait_idle

pytestmark = pytest.mark.unit


def relay_app(hops: list[str], running: dict[str, App]) -> App:
    """An app whose first handler publishes (through the running app) to a second one."""
    router = Router()

    @router.direct("in", "go", queue="first")
    async def first(body: str) -> None:
        hops.append("first")
        await running["app"].publish("out", body.upper(), routing_key="next")

    @router.direct("out", "next", queue="second")
    async def second(body: str, message: Message) -> None:
        hops.append(f"second:{body}")

    return App([router])


class TestTestClient:
    """The client runs a copy of the app and sees what happens on its broker."""

    async def test_waits_for_chained_handlers(self) -> None:
        """publish_and_wait returns only once handlers published to have been handled too."""
        hops: list[str] = []
        running: dict[str, App] = {}
        async with TestClient(relay_app(hops, running)) as client:
            running["app"] = client.app
            await client.publish_and_wait("in", "x", routing_key="go")
            assert hops == ["first", "second:X"]
            assert [(m.exchange, m.body) for m in client.published] == [
                ("in", b"x"),
                ("out", b"X"),
            ]
            assert client.published_to("out", "next")[0].queues == frozenset({"second"})

    async def test_the_given_app_is_not_started(self) -> None:
        """The app handed to the client stays new, so every test can use it again."""
        router = Router()

        @router.consume("q", queue_options={})
        async def handle(body: bytes) -> None: ...

        app = App([router])
        for _ in range(2):
            async with TestClient(app) as client:
                assert client.app is not app
        assert app.state == "new"

    async def test_dead_letters_with_reason(self) -> None:
        """Exhausted retries show up in dead_letters with the exception's type and message."""
        router = Router()

        @router.direct("jobs", "run", queue="jobs.run", retry=Retry(attempts=2))
        async def run(body: dict[str, int]) -> None:
            raise RuntimeError(f"job {body['id']} failed")

        async with TestClient(App([router])) as client:
            await client.publish_and_wait("jobs", {"id": 7}, routing_key="run")
            [dead] = client.dead_letters("jobs.run")
            assert dead.exception_type == "RuntimeError"
            assert dead.reason == "job 7 failed"
            assert dead.retry_count == 1
            assert dead.json() == {"id": 7}
            assert client.dead_letters("jobs.run.dlq") == [dead]

    async def test_clients_on_one_url_share_a_broker(self) -> None:
        """A publisher client and a consumer client on the same URL see each other."""
        got: list[str] = []
        router = Router()

        @router.direct("news", "new", queue="news.reader")
        async def read(body: str) -> None:
            got.append(body)

        url = "memory://shared-test-client"
        async with TestClient(App([router]), url=url) as reader, TestClient(url=url) as writer:
            await writer.publish_and_wait("news", "hello", routing_key="new")
            assert got == ["hello"]
            assert reader.broker is writer.broker


class TestLifespan:
    """The client's copy of the app runs the app's lifespan, with itself as the app."""

    async def test_lifespan_runs_around_the_client(self) -> None:
        """The lifespan gets the running copy; its state is the copy's lifespan_state."""
        router, entered, seen = Router(), list[App](), list[str]()

        @contextlib.asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[dict[str, str]]:
            entered.append(app)
            yield {"db": "test-db"}
            seen.append("exit")

        @router.direct("in", "go", queue="q")
        async def handle(body: str) -> None:
            seen.append(entered[0].lifespan_state["db"])

        app = App([router], lifespan=lifespan)
        async with TestClient(app) as client:
            assert entered == [client.app]
            await client.publish_and_wait("in", "x", routing_key="go")
            assert client.app.lifespan_state == {"db": "test-db"}
        assert seen == ["test-db", "exit"]
        assert app.state.value == "new"


def flaky_app(fails: int, retry: Retry, attempts: list[int]) -> App:
    """An app whose handler fails its first ``fails`` attempts, noting each attempt."""
    router = Router()

    @router.direct("jobs", "run", queue="jobs.flaky", retry=retry)
    async def run(body: dict[str, int], message: Message) -> None:
        attempts.append(message.attempt)
        if message.attempt <= fails:
            raise RuntimeError(f"attempt {message.attempt} failed")

    return App([router])


class TestFastRetries:
    """``TestClient(app, fast_retries=True)``: retries run at once, counted as ever."""

    async def test_broker_delayed_retries_do_not_wait(self) -> None:
        """Retries whose waits would go through a delay queue (30 s) run at once."""
        attempts: list[int] = []
        app = flaky_app(2, Retry(attempts=3, wait=30), attempts)
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with TestClient(app, fast_retries=True, timeout=2.0) as client:
            await client.publish_and_wait("jobs", {"id": 1}, routing_key="run")
            assert client.dead_letters("jobs.flaky") == []
            assert client.messages("burrowmq.delay.4") == []  # the ladder's 16 s level
        assert attempts == [1, 2, 3]
        assert loop.time() - began < 2.0

    async def test_exhausted_retries_dead_letter_as_ever(self) -> None:
        """The last failure dead-letters with the retry count it has without fast retries."""
        attempts: list[int] = []
        app = flaky_app(9, Retry(attempts=4, wait=0.5), attempts)
        async with TestClient(app, fast_retries=True, timeout=1.0) as client:
            await client.publish_and_wait("jobs", {"id": 1}, routing_key="run")
            [dead] = client.dead_letters("jobs.flaky")
        assert attempts == [1, 2, 3, 4]
        assert (dead.exception_type, dead.reason, dead.retry_count) == (
            "RuntimeError",
            "attempt 4 failed",
            3,
        )

    async def test_waits_are_kept_by_default(self) -> None:
        """Without it the client waits as the policy says; the app under test is unchanged."""
        attempts: list[int] = []
        app = flaky_app(1, Retry(attempts=2, wait=0.3), attempts)
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with TestClient(app) as client:
            await client.publish_and_wait("jobs", {"id": 1}, routing_key="run")
        assert attempts == [1, 2]
        assert loop.time() - began >= 0.3
        assert TestClient(app, fast_retries=True).app.config.retry_waits is False
        assert app.config.retry_waits is True


class TestWaitIdle:
    """Idleness: nothing unacked, nothing ready for a consumer, no TTL pending."""

    async def test_times_out_naming_what_is_pending(self) -> None:
        """A message held unacked makes wait_idle time out, saying where it is."""
        broker = MemoryBroker()
        transport = MemoryTransport(broker)
        await transport.connect()
        await transport.declare_queue("held")
        held: asyncio.Queue[object] = asyncio.Queue()
        await transport.consume("held", held.put_nowait, prefetch=1)
        await transport.publish("", "held", b"x", Properties())
        with pytest.raises(TimeoutError, match="1 unacked from 'held'"):
            await wait_idle(broker, 0.05)
        assert pending_work(broker) == ["1 unacked from 'held'"]
        await transport.close()
        assert pending_work(broker) == []


class TestSettingsSurvive:
    """The test client runs the app's copy with every setting the app was given."""

    @staticmethod
    def _non_default_app(router: Router) -> App:
        return App(
            [router],
            url="amqps://svc:secret@rabbit.example:5673/prod",
            topology=Topology(),
            name="billing",
            retry=Retry(attempts=9, wait=0.5),
            prefetch=3,
            concurrency=2,
            shutdown_timeout=4.5,
            middleware=[Idempotency()],
            max_redeliveries=4,
            connect_timeout=1.5,
            rpc_timeout=2.5,
            rpc_tracebacks=True,
            recovery_wait=7.0,
            instrumentation=[Instrument()],
            tls=TLS(verify=False),
            declare=False,
            lifespan=_lifespan,
            dependency_overrides={_settings: _fake_settings},
            codecs=[MsgPackCodec()],
            max_decompressed_size=1024,
        )

    async def test_every_setting_survives(self) -> None:
        """Each AppConfig field but the client's own (transport, retry_waits) is the same on the client's app; the app under test sets each one to a non-default value, so a field added later is covered too."""
        router = Router()
        router.consume("jobs", queue_options={})(_noop)
        app = self._non_default_app(router)
        defaults = AppConfig()
        own = {"transport", "retry_waits"}
        fields = [f.name for f in dataclasses.fields(AppConfig) if f.name not in own]
        unset = [name for name in fields if getattr(app.config, name) == getattr(defaults, name)]
        assert unset == [], f"give these settings a non-default value in this test: {unset}"
        client = TestClient(app)
        for name in fields:
            assert getattr(client.app.config, name) == getattr(app.config, name), name
        assert client.app.config.transport is client.transport
        assert app.config.transport is None, "the app under test is left as it was"
        async with client:
            assert client.app.routes == app.routes
            assert client.app.recovery_wait == 7.0
            assert client.app.state.value == "running"
        assert app.state.value == "new"

    def test_dependency_overrides_add_to_the_apps(self) -> None:
        """The client's dependency_overrides go on top of the app's own; the app keeps its."""
        router = Router()
        router.consume("jobs", queue_options={})(_noop)
        app = self._non_default_app(router)
        client = TestClient(app, dependency_overrides={_fake_settings: _settings})
        assert client.app.config.dependency_overrides == {
            _settings: _fake_settings,
            _fake_settings: _settings,
        }
        assert app.config.dependency_overrides == {_settings: _fake_settings}

    def test_routes_added_after_the_app_was_made_are_served(self) -> None:
        """The app reads its routers' routes when it starts, not when it is made."""
        router = Router()
        app = App([router], url="memory://")
        router.consume("late", queue_options={})(_noop)
        assert [route.queue.name for route in app.routes if route.queue] == ["late"]
        assert TestClient(app).app.routes == app.routes


async def _noop(body: Any) -> None:
    """A handler that does nothing."""


@contextlib.asynccontextmanager
async def _lifespan(app: App) -> AsyncIterator[None]:
    """A lifespan that yields nothing."""
    yield


def _settings() -> str:
    return "real"


def _fake_settings() -> str:
    return "fake"
