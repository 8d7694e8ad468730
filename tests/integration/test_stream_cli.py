"""`burrowmq stream info` and `burrowmq stream replay` against the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aio_pika
import pytest

from burrowmq import App, Message, Router
from burrowmq.routing.offsets import OFFSET_QUEUE_ARGUMENTS, offset_queue
from tests.conftest import Names

from .conftest import drain, wait_for
from .test_operator_cli import cli

pytestmark = pytest.mark.integration

COUNT = 10


async def _fill(channel: aio_pika.abc.AbstractChannel, stream: str, start: int, end: int) -> None:
    """Declare ``stream``; publish ``{"n": n}`` with header ``n`` and ids, n in [start, end)."""
    await channel.declare_queue(stream, durable=True, arguments={"x-queue-type": "stream"})
    for n in range(start, end):
        message = aio_pika.Message(
            json.dumps({"n": n}).encode(),
            headers={"n": n, "origin": "test"},
            message_id=f"m-{n}",
            correlation_id=f"c-{n}",
            content_type="application/json",
        )
        await channel.default_exchange.publish(message, routing_key=stream)


def _route(stream: str, consumer: str, seen: list[int]) -> Router:
    router = Router()

    @router.stream(stream, consumer=consumer, offset="first")
    async def project(event: dict[str, int], message: Message) -> None:
        assert message.offset is not None
        seen.append(message.offset)

    return router


async def _ready_soon(channel: aio_pika.abc.AbstractChannel, name: str, want: int) -> int:
    """Messages ready in queue ``name`` once they are ``want`` (or after 10 s: the last count).

    A message a reader held goes back as its channel closes, not at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        declared = await channel.declare_queue(name, passive=True)
        count = int(declared.declaration_result.message_count or 0)
        if count == want or loop.time() > deadline:
            return count
        await asyncio.sleep(0.05)


async def _json(*args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = await cli(*args)
    assert out.strip(), err
    return code, json.loads(out), err


class TestInfo:
    """`stream info` tells the offsets, the consumers and each named consumer's mark."""

    @pytest.mark.timeout(120)
    async def test_two_named_consumers_at_known_marks(
        self,
        names: Names,
        broker_url: str,
        management_url: str,
        amqp: aio_pika.abc.AbstractChannel,
        make_app: Callable[..., App],
    ) -> None:
        """Consumers at marks 9 and 4 of 0..9, one of them running, and a forged third."""
        stream = names.queue("events")
        a, b, c = (f"{names.prefix}.{x}" for x in "abc")
        for consumer in (a, b, c):
            names.add_queue(offset_queue(stream, consumer))
            names.add_queue(f"{consumer}.dlq")
        await _fill(amqp, stream, 0, 5)
        seen_a: list[int] = []
        seen_b: list[int] = []
        first_b = make_app(_route(stream, b, seen_b))
        await first_b.start()
        await wait_for(lambda: 4 in seen_b, 30)
        await first_b.stop()  # b stores 4
        await _fill(amqp, stream, 5, COUNT)
        running_a = make_app(_route(stream, a, seen_a))
        await running_a.start()
        await wait_for(lambda: COUNT - 1 in seen_a, 30)  # a runs on, at 9 once committed
        forged = offset_queue(stream, c)
        await amqp.declare_queue(forged, durable=True, arguments=dict(OFFSET_QUEUE_ARGUMENTS))
        await amqp.default_exchange.publish(
            aio_pika.Message(b'{"offset": 99999}'), routing_key=forged
        )

        async def mark_of_a() -> Any:
            _, info, _ = await _json(
                "stream", "info", stream, "--json", "--url", broker_url,
                "--management-url", management_url,
            )  # fmt: skip
            return info, {m["consumer"]: m for m in info["named_consumers"]}

        for _ in range(60):  # a's mark reaches 9 within its commit interval, and the
            info, marks = await mark_of_a()  # API's statistics see a within seconds
            if marks.get(a, {}).get("offset") == COUNT - 1 and info["consumers_connected"]:
                break
            await asyncio.sleep(0.5)
        assert (info["first_offset"], info["last_offset"], info["messages"]) == (0, 9, COUNT)
        assert info["management"]["reachable"] is True
        assert info["consumers_connected"] == 1
        assert info["consumers"][0]["from"] == "first"  # a had no mark when it started
        assert sorted(marks) == sorted([a, b, c])
        assert (marks[a]["offset"], marks[a]["behind"]) == (9, 0)
        assert (marks[b]["offset"], marks[b]["behind"]) == (4, 5)
        assert marks[c]["offset"] is None and "99999" in marks[c]["problem"]
        # The marks were read, not taken: each offset queue still holds its one message.
        for consumer in (a, b, c):
            assert await _ready_soon(amqp, offset_queue(stream, consumer), 1) == 1

        code, out, err = await cli(
            "stream", "info", stream, "--url", broker_url, "--management-url", management_url
        )
        assert code == 0, err
        assert "offsets:  0 .. 9" in out and "messages: 10" in out
        assert f"{b}: offset 4 (5 behind the last)" in out
        assert f"{c}: mark ignored by the consumer" in out
        await running_a.stop()

    @pytest.mark.timeout(60)
    async def test_without_the_management_api(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """With the API unreachable it says so and prints what AMQP tells, --consumer marks too."""
        stream = names.queue("events")
        consumer = f"{names.prefix}.proj"
        queue = names.add_queue(offset_queue(stream, consumer))
        await _fill(amqp, stream, 0, COUNT)
        await amqp.declare_queue(queue, durable=True, arguments=dict(OFFSET_QUEUE_ARGUMENTS))
        await amqp.default_exchange.publish(
            aio_pika.Message(json.dumps({"offset": 6}).encode()), routing_key=queue
        )
        nowhere = "http://127.0.0.1:1"
        code, info, err = await _json(
            "stream", "info", stream, "--json", "--consumer", consumer, "--url", broker_url,
            "--management-url", nowhere,
        )  # fmt: skip
        assert code == 0, err
        assert info["management"]["reachable"] is False
        assert "127.0.0.1:1" in info["management"]["error"]
        assert (info["first_offset"], info["last_offset"], info["messages"]) == (0, 9, COUNT)
        assert info["bytes"] is None and info["consumers_connected"] is None
        assert [(m["consumer"], m["offset"], m["behind"]) for m in info["named_consumers"]] == [
            (consumer, 6, 3)
        ]
        code, out, err = await cli(
            "stream", "info", stream, "--url", broker_url, "--management-url", nowhere
        )
        assert code == 0, err
        assert "management API not reachable" in out and "offsets:  0 .. 9" in out

    async def test_missing_stream_and_plain_queue(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """A stream that does not exist, or a classic queue, fails with a line naming it."""
        missing = names.queue("missing")
        code, _, err = await cli("stream", "info", missing, "--url", broker_url)
        assert code != 0 and f"there is no stream {missing!r}" in err
        plain = names.queue("plain")
        await amqp.declare_queue(plain, durable=True)
        await amqp.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=plain)
        code, _, err = await cli("stream", "info", plain, "--url", broker_url)
        assert code != 0 and plain in err and "Traceback" not in err
        assert await _ready_soon(amqp, plain, 1) == 1  # nothing was taken


class TestReplay:
    """`stream replay` re-publishes a range, confirmed, in order, and stops at its end."""

    @pytest.mark.timeout(120)
    async def test_replay_a_range_into_a_bound_queue(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """Offsets 3..7 arrive in order with their bodies, headers, ids and routing key."""
        stream, target = names.queue("events"), names.queue("target")
        exchange = names.exchange("replayed")
        await _fill(amqp, stream, 0, COUNT)
        declared = await amqp.declare_exchange(exchange, "fanout", durable=True)
        queue = await amqp.declare_queue(target, durable=True)
        await queue.bind(declared)
        code, summary, err = await _json(
            "stream", "replay", stream, "--from", "3", "--until", "7", "--to", exchange,
            "--json", "--url", broker_url,
        )  # fmt: skip
        assert code == 0, err
        assert summary["replayed"] == 5
        assert (summary["first_offset"], summary["last_offset"]) == (3, 7)
        assert summary["stopped_by"] == "until" and summary["error"] is None
        got = await drain(amqp, target)
        assert [json.loads(m.body)["n"] for m in got] == [3, 4, 5, 6, 7]
        for n, message in zip(range(3, 8), got, strict=True):
            assert message.headers["n"] == n and message.headers["origin"] == "test"
            assert message.headers["x-replayed-offset"] == n
            assert message.headers["x-replayed-from"] == stream
            assert "x-stream-offset" not in message.headers
            assert (message.message_id, message.correlation_id) == (f"m-{n}", f"c-{n}")
            assert message.content_type == "application/json"
            assert message.routing_key == stream  # its original routing key
        # The stream keeps everything: a replay takes nothing away.
        code, info, err = await _json("stream", "info", stream, "--json", "--url", broker_url)
        assert (info["first_offset"], info["last_offset"]) == (0, 9)

    @pytest.mark.timeout(120)
    async def test_routing_key_limit_and_end_of_stream(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """--routing-key and --limit are obeyed; without --until it stops at the end."""
        stream, target = names.queue("events"), names.queue("target")
        exchange = names.exchange("direct")
        await _fill(amqp, stream, 0, COUNT)
        declared = await amqp.declare_exchange(exchange, "direct", durable=True)
        queue = await amqp.declare_queue(target, durable=True)
        await queue.bind(declared, routing_key="again")
        code, out, err = await cli(
            "stream", "replay", stream, "--from", "first", "--to", exchange, "-k", "again",
            "--limit", "2", "--url", broker_url,
        )  # fmt: skip
        assert code == 0, err
        assert f"{stream}: 2 replayed to {exchange!r} (offsets 0 .. 1)" in out
        got = await drain(amqp, target)
        assert [(json.loads(m.body)["n"], m.routing_key) for m in got] == [
            (0, "again"),
            (1, "again"),
        ]
        code, summary, err = await _json(
            "stream", "replay", stream, "--from", "2026-01-01T00:00:00Z", "--to", exchange,
            "-k", "again", "--json", "--url", broker_url,
        )  # fmt: skip
        assert code == 0, err
        assert (summary["replayed"], summary["stopped_by"], summary["end_offset"]) == (
            COUNT,
            "end",
            9,
        )
        assert [json.loads(m.body)["n"] for m in await drain(amqp, target)] == list(range(COUNT))

    async def test_missing_exchange_fails_naming_it(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """A destination exchange that does not exist: exit 1, its name in the error."""
        stream = names.queue("events")
        await _fill(amqp, stream, 0, 3)
        missing = names.exchange("nowhere")
        code, _, err = await cli(
            "stream", "replay", stream, "--from", "first", "--to", missing, "--url", broker_url
        )
        assert code == 1
        assert f"cannot replay to exchange {missing!r}: it does not exist" in err
        assert "Traceback" not in err

    async def test_unroutable_stops_naming_the_offset(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """An exchange that routes the message nowhere stops the replay at offset 0: exit 1."""
        stream = names.queue("events")
        exchange = names.exchange("unbound")
        await _fill(amqp, stream, 0, 3)
        await amqp.declare_exchange(exchange, "fanout", durable=True)
        code, summary, err = await _json(
            "stream", "replay", stream, "--from", "first", "--to", exchange, "--json",
            "--url", broker_url,
        )  # fmt: skip
        assert code == 1
        assert summary["replayed"] == 0
        assert f"replay stopped at offset 0 of stream {stream!r}" in summary["error"]
        assert "replay stopped at offset 0" in err

    @pytest.mark.parametrize("to", ["burrowmq.rpc", "burrowmq.delay.0", "amq.private"])
    async def test_reserved_destinations_are_refused(
        self, names: Names, broker_url: str, to: str
    ) -> None:
        """burrowmq's own exchanges and the broker's reserved ones are refused before reading."""
        stream = names.queue("events")
        code, _, err = await cli(
            "stream", "replay", stream, "--from", "first", "--to", to, "--url", broker_url
        )
        assert code == 2
        assert f"will not replay into {to!r}" in err

    async def test_bad_positions_are_refused(self, names: Names, broker_url: str) -> None:
        """--from that is neither an offset, 'first' nor a zoned time fails naming it."""
        stream = names.queue("events")
        for value, text in (
            ("-1", "--from takes an offset >= 0"),
            ("yesterday", "--from takes an offset, 'first' or an ISO-8601 time"),
            ("2026-01-01T00:00:00", "has no time zone"),
        ):
            code, _, err = await cli(
                "stream", "replay", stream, "--from", value, "--to", "x", "--url", broker_url
            )
            assert code == 2 and text in err, err


class TestReplayHostile:
    """A message whose properties cannot all be read stops the replay, naming its offset."""

    @pytest.mark.faults
    @pytest.mark.timeout(60)
    async def test_undecodable_properties_stop_the_replay(
        self, names: Names, broker_url: str, amqp: aio_pika.abc.AbstractChannel
    ) -> None:
        """Offset 1 has a content_type of invalid UTF-8: offset 0 is replayed, then exit 1 at 1."""
        from tests.faults.hostile import RawPublisher, content_header

        stream, target = names.queue("events"), names.queue("target")
        exchange = names.exchange("replayed")
        await _fill(amqp, stream, 0, 1)
        body = b'{"n": 1}'
        async with RawPublisher.connect(broker_url) as raw:
            await raw.publish(
                "",
                stream,
                body,
                content_header(len(body), content_type=b"application/\xff\xfejson"),
            )
        await _fill(amqp, stream, 2, 3)
        declared = await amqp.declare_exchange(exchange, "fanout", durable=True)
        queue = await amqp.declare_queue(target, durable=True)
        await queue.bind(declared)
        code, summary, err = await _json(
            "stream", "replay", stream, "--from", "first", "--to", exchange, "--json",
            "--url", broker_url,
        )  # fmt: skip
        assert code == 1, err
        assert summary["replayed"] == 1
        assert "replay stopped at offset 1" in summary["error"]
        assert "could not be read" in summary["error"]
        assert [json.loads(m.body)["n"] for m in await drain(amqp, target)] == [0]
