"""burrowmq.testing: the test client, captures, dead letters and waiting for idleness."""

from __future__ import annotations

import asyncio

import pytest

from burrowmq import App, Message, Retry, Router
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
