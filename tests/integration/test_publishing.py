"""Publishing on the real broker: confirms, stamping, mandatory, nacks, failures named."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog.testing

from burrowmq import (
    App,
    BrokerUnreachable,
    PublishBatchError,
    PublishError,
    PublishNacked,
    Router,
    StateError,
    TopologyError,
    Unroutable,
)

from .conftest import drain

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BURROWMQ = str(Path(sys.executable).with_name("burrowmq"))


def _with(url: str, *, password: str | None = None, vhost: str | None = None) -> str:
    """``url`` with another password or vhost."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if password is not None:
        user = (parts.username or "guest").split(":")[0]
        netloc = f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"
    path = parts.path if vhost is None else f"/{vhost}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


async def _cli(*args: str) -> tuple[int, str]:
    """Run `burrowmq ARGS`; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        BURROWMQ, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, err.decode()


class TestPublish:
    async def test_messages_are_stamped_and_persistent(self, make_app, names, amqp) -> None:
        """Every message carries message_id, timestamp and content_type, and is persistent by default."""
        queue = names.queue("plain")
        await amqp.declare_queue(queue, durable=True)
        app = make_app(Router())
        await app.start()
        message_id = await app.publish("", {"a": 1}, routing_key=queue)
        await app.publish("", "text", routing_key=queue, persistent=False, message_id="m-2")
        first, second = await drain(amqp, queue)
        assert first.message_id == message_id
        assert first.timestamp is not None
        assert first.content_type == "application/json"
        assert first.body == b'{"a":1}'
        assert first.delivery_mode == 2
        assert second.message_id == "m-2"
        assert second.content_type == "text/plain; charset=utf-8"
        assert second.delivery_mode == 1

    async def test_mandatory_without_binding_is_unroutable(self, make_app, names, amqp) -> None:
        """mandatory=True raises Unroutable, naming exchange and key, when no queue is bound."""
        exchange = names.exchange("lonely")
        await amqp.declare_exchange(exchange, "direct", auto_delete=False)
        app = make_app(Router())
        await app.start()
        with pytest.raises(Unroutable) as caught:
            await app.publish(exchange, {"x": 1}, routing_key="nobody", mandatory=True)
        assert caught.value.exchange == exchange
        assert caught.value.routing_key == "nobody"
        assert exchange in str(caught.value)
        # Without mandatory the broker drops it silently, as AMQP says.
        await app.publish(exchange, {"x": 1}, routing_key="nobody")

    async def test_missing_exchange_is_named_and_publishing_goes_on(self, make_app, names) -> None:
        """Publishing to a missing exchange raises PublishError naming it; later publishes work."""
        queue = names.queue("after")
        router = Router()
        got: list[int] = []

        @router.consume(queue, queue_options={})
        async def handle(body: dict[str, int]) -> None:
            got.append(body["n"])

        app = make_app(router)
        await app.start()
        with pytest.raises(PublishError, match="no-such-exchange"):
            await app.publish("no-such-exchange", {"n": 0}, routing_key="k")
        await app.publish("", {"n": 1}, routing_key=queue)
        from .conftest import wait_for

        await wait_for(lambda: got == [1])

    async def test_nack_raises(self, make_app, names, amqp) -> None:
        """A message the broker refuses (queue full, reject-publish) raises PublishNacked."""
        queue = names.queue("full")
        await amqp.declare_queue(
            queue, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        app = make_app(Router())
        await app.start()
        await app.publish("", {"n": 1}, routing_key=queue)
        with pytest.raises(PublishNacked):
            await app.publish("", {"n": 2}, routing_key=queue)

    async def test_publish_before_start_is_a_state_error(self, broker_url) -> None:
        """Publishing on an app that has not started raises StateError."""
        app = App(url=broker_url)
        with pytest.raises(StateError, match="new"):
            await app.publish("", b"x", routing_key="q")


class TestLifecycle:
    async def test_states_and_misuse(self, make_app) -> None:
        """An app goes new -> running -> closed and refuses restarts and late routes."""
        app = make_app(Router())
        assert app.state == "new"
        await app.start()
        assert app.state == "running"
        with pytest.raises(StateError):
            await app.start()
        with pytest.raises(StateError):
            app.include_router(Router())
        await app.stop()
        await app.stop()
        assert app.state == "closed"
        with pytest.raises(StateError):
            await app.start()

    async def test_unreachable_broker_names_target_not_password(self) -> None:
        """A broker that does not answer raises BrokerUnreachable with host, port and user only."""
        app = App(url="amqp://alice:s3cret@127.0.0.1:1/", connect_timeout=2)
        with pytest.raises(BrokerUnreachable) as caught:
            await app.start()
        text = str(caught.value)
        assert "127.0.0.1:1" in text
        assert "'alice'" in text
        assert "s3cret" not in text
        assert app.state == "closed"

    async def test_wrong_vhost_says_so(self, broker_url) -> None:
        """A vhost that does not exist is named as such, not as aiormq's unexpected frame."""
        app = App(url=_with(broker_url, vhost="no-such-vhost-17"), connect_timeout=5)
        with structlog.testing.capture_logs() as logs, pytest.raises(BrokerUnreachable) as caught:
            await app.start()
        text = str(caught.value)
        assert "vhost 'no-such-vhost-17' does not exist or access to it is refused" in text
        assert "OpenOk" not in text and "object at" not in text
        assert caught.value.answered
        assert "app_stopped" not in [e["event"] for e in logs], "it never started"
        assert app.state == "closed"

    async def test_wrong_password_is_not_called_a_broker_down(self, broker_url) -> None:
        """A refused login names the credentials, and the CLI does not ask whether RabbitMQ runs."""
        url = _with(broker_url, password="not-the-password-17")
        app = App(url=url, connect_timeout=5)
        with pytest.raises(BrokerUnreachable) as caught:
            await app.start()
        assert "access refused (check user/password)" in str(caught.value)
        assert "not-the-password-17" not in str(caught.value)
        assert caught.value.answered
        code, err = await _cli("rpc", "call", "svc.method", "{}", "--url", url)
        assert code == 1
        assert "access refused" in err
        assert "is RabbitMQ running?" not in err
        assert "not-the-password-17" not in err
        code, err = await _cli("rpc", "call", "svc.method", "{}", "--url", _with(url, vhost="x"))
        assert "is RabbitMQ running?" not in err
        code, err = await _cli("rpc", "call", "svc.method", "{}", "--url", "amqp://127.0.0.1:1/")
        assert code == 1
        assert "is RabbitMQ running?" in err, "a refused TCP connection still gets the hint"

    async def test_cluster_urls_are_tried_in_turn(self, make_app, broker_url) -> None:
        """With a list of URLs, a dead first node is skipped and the next one is used."""
        app = make_app(Router(), url=["amqp://guest:guest@127.0.0.1:1/", broker_url])
        await app.start()
        assert app.state == "running"


class TestBrokerConflicts:
    async def test_conflicting_queue_names_entity_and_argument(self, make_app, names, amqp) -> None:
        """A queue that exists with another x-max-length raises TopologyError naming both values."""
        queue = names.queue("conflict")
        await amqp.declare_queue(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-max-length": 10,
                "x-dead-letter-exchange": f"{queue}.dlx",
            },
        )
        router = Router()

        @router.consume(queue, queue_options={"arguments": {"x-max-length": 20}})
        async def handle(body: bytes) -> None: ...

        app = make_app(router)
        with pytest.raises(TopologyError) as caught:
            await app.start()
        error = caught.value
        assert error.entity == f"queue {queue!r}"
        assert error.argument == "x-max-length"
        assert queue in str(error)
        assert "x-max-length=20" in str(error)

    async def test_string_argument_conflict_has_no_type_tags(self, make_app, names, amqp) -> None:
        """A queue declared without a dead-letter exchange reads "without", with no pamqp type tag."""
        # A short name: RabbitMQ cuts its reply text at 255 bytes, both values included.
        queue = names.add_queue(f"t.{uuid.uuid4().hex[:8]}")
        names.add_queue(f"{queue}.dlq")
        names.exchanges.add(f"{queue}.dlx")
        classic = {"x-queue-type": "classic"}  # (quorum queues let a DLX argument differ)
        await amqp.declare_queue(queue, durable=True, arguments=classic)
        router = Router()

        @router.consume(queue, queue_options={"arguments": classic})
        async def handle(body: bytes) -> None: ...

        app = make_app(router)
        with pytest.raises(TopologyError) as caught:
            await app.start()
        text = str(caught.value)
        assert "(longstr)" not in text and "longstr" not in text
        assert "exists on the broker without x-dead-letter-exchange" in text
        assert f"asks for x-dead-letter-exchange={queue}.dlx;" in text


class TestPublishMany:
    async def test_all_confirmed_and_delivered_in_order(self, make_app, names, amqp) -> None:
        """publish_many confirms every message and returns their ids in order."""
        queue = names.queue("many")
        await amqp.declare_queue(queue, durable=True)
        app = make_app(Router())
        await app.start()
        ids = await app.publish_many("", ({"n": n} for n in range(2000)), routing_key=queue)
        assert len(ids) == len(set(ids)) == 2000
        got = await drain(amqp, queue)
        assert sorted(m.message_id for m in got) == sorted(ids)
        assert sorted(int(m.body.decode().split(":")[1].rstrip("}")) for m in got) == list(
            range(2000)
        )

    async def test_failures_are_reported_by_index(self, make_app, names, amqp) -> None:
        """Messages the broker refuses are listed by index; the others are confirmed."""
        queue = names.queue("bounded")
        await amqp.declare_queue(
            queue, durable=True, arguments={"x-max-length": 10, "x-overflow": "reject-publish"}
        )
        app = make_app(Router())
        await app.start()
        with pytest.raises(PublishBatchError) as caught:
            await app.publish_many("", [{"n": n} for n in range(30)], routing_key=queue, window=1)
        error = caught.value
        assert error.confirmed == 10
        assert [index for index, _ in error.failures] == list(range(10, 30))
        assert all(isinstance(exc, PublishNacked) for _, exc in error.failures)


class TestBadHeaders:
    async def test_unencodable_header_is_named(self, make_app, names) -> None:
        """A header value AMQP cannot carry raises PublishError naming the header, not pamqp's TypeError."""
        app = make_app(Router())
        await app.start()
        with pytest.raises(PublishError, match=r"header 'nested' holds a tuple"):
            await app.publish(
                "", b"x", routing_key=names.queue(), headers={"nested": {"a": (1, 2)}}
            )
        with pytest.raises(PublishError, match=r"header 'raw' holds a bytes"):
            await app.publish("", b"x", routing_key=names.queue(), headers={"raw": b"\x00"})


def _lean_of(app: App) -> object:
    """The lean publisher of an App's AMQP transport (None: it publishes with basic_publish)."""
    return getattr(app._transport, "_lean", "no such attribute")


class TestLeanPath:
    async def test_a_checked_aiormq_publishes_on_the_lean_path(self, make_app, names, amqp) -> None:
        """On a checked aiormq the publishing channel is lean, and every property arrives."""
        from burrowmq.amqp.lean import supported

        if not supported():
            pytest.skip("the installed aiormq is not a version the lean path was checked on")
        queue = names.queue("lean")
        await amqp.declare_queue(queue, durable=True)
        app = make_app(Router())
        await app.start()
        assert _lean_of(app) is not None
        big = bytes(range(256)) * 2_000  # 512,000 bytes: several body frames
        await app.publish(
            "",
            big,
            routing_key=queue,
            headers={"x-n": 7, "ratio": 0.1, "nested": {"a": [1, "b"]}},
            correlation_id="c-1",
            reply_to="somewhere",
            expiration=60,
            priority=3,
            message_id="m-1",
        )
        (got,) = await drain(amqp, queue)
        assert got.body == big
        assert got.headers == {"x-n": 7, "ratio": 0.1, "nested": {"a": [1, "b"]}}
        assert (got.correlation_id, got.reply_to, got.expiration, got.priority) == (
            "c-1",
            "somewhere",
            60.0,
            3,
        )
        assert got.message_id == "m-1"
        assert got.delivery_mode == 2

    async def test_one_at_a_time_returns_and_acks_reach_their_publishes(
        self, make_app, names, amqp
    ) -> None:
        """Written in place and settled as read: each of alternating routable and unroutable
        mandatory publishes gets its own outcome (a return before its ack), in order."""
        from burrowmq.amqp.lean import supported

        if not supported():
            pytest.skip("the installed aiormq is not a version the lean path was checked on")
        exchange = names.exchange("alternate")
        queue = names.queue("alternate")
        declared = await amqp.declare_exchange(exchange, "direct", auto_delete=False)
        bound = await amqp.declare_queue(queue, durable=True)
        await bound.bind(declared, "here")
        app = make_app(Router())
        await app.start()
        lean = _lean_of(app)
        assert lean._writer is not None  # type: ignore[attr-defined]  # the writer was found
        outcomes = []
        for n in range(40):
            key = "here" if n % 2 else "nowhere"
            try:
                await app.publish(exchange, {"n": n}, routing_key=key, mandatory=True)
                outcomes.append("ok")
            except Unroutable as exc:
                outcomes.append(f"returned {exc.routing_key}")
        assert outcomes == ["returned nowhere", "ok"] * 20
        got = await drain(amqp, queue)
        assert [json.loads(message.body)["n"] for message in got] == list(range(1, 40, 2))

    async def test_an_unchecked_aiormq_falls_back_to_basic_publish(
        self, make_app, names, amqp, monkeypatch
    ) -> None:
        """Where aiormq is not a checked version, publishing uses basic_publish, same results."""
        from burrowmq.amqp import lean

        monkeypatch.setattr(lean, "_SUPPORTED", False)
        queue = names.queue("plain-path")
        await amqp.declare_queue(
            queue, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        app = make_app(Router())
        await app.start()
        assert _lean_of(app) is None
        await app.publish("", {"n": 1}, routing_key=queue, message_id="m-1")
        with pytest.raises(PublishNacked):
            await app.publish("", {"n": 2}, routing_key=queue)
        with pytest.raises(Unroutable):
            await app.publish("", {"n": 3}, routing_key=names.queue("nobody"), mandatory=True)
        (got,) = await drain(amqp, queue)
        assert got.message_id == "m-1"
