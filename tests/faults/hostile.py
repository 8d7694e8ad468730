"""Hostile input for fault tests: a raw AMQP publisher, and good traffic that must go on.

:class:`RawPublisher` speaks AMQP 0-9-1 itself (asyncio streams, method frames from
``pamqp``) so that it can send a content header that a strict decoder refuses: pamqp's
encoder checks every value, so the header frame is built here by hand, with ``struct``.
RabbitMQ does not look inside these fields (it never validates UTF-8 or timestamps), so
it routes and delivers them as sent: exactly what a buggy or malicious client can do.

:class:`Traffic` keeps publishing good messages to every queue of a service and calling
one of its procedures while a test throws bad input at it, and counts what came back:
lost confirmed messages, duplicates, failed calls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from pamqp import commands, frame
from pamqp.body import ContentBody
from pamqp.header import ProtocolHeader
from pydantic import BaseModel

from burrowmq import App, BurrowError, Message, Router
from tests.faults.workload import Tally, wait_for

__all__ = [
    "PAST_YEAR_9999_US",
    "Job",
    "RawPublisher",
    "Traffic",
    "content_header",
    "direct_reply_to_address",
    "hostile_reply_tos",
    "longstr",
    "service_name",
    "shortstr",
    "table",
    "values_text",
]

PAST_YEAR_9999_US = 253_402_300_800_000_000
"""A timestamp in microseconds since the epoch (year 9999 + 1 if read as seconds): pamqp's
``datetime.fromtimestamp`` overflows on it."""

_FRAME_END = b"\xce"  # every AMQP frame ends with this octet
_HEADER_FRAME = 2  # frame type of a content header (1: method, 3: body, 8: heartbeat)

# Basic property flags, the most significant bit first, in the order their fields
# follow the flags in the frame (AMQP 0-9-1, 4.2.6.1 and the basic class definition).
_FLAGS = {
    "content_type": 1 << 15,
    "content_encoding": 1 << 14,
    "headers": 1 << 13,
    "delivery_mode": 1 << 12,
    "priority": 1 << 11,
    "correlation_id": 1 << 10,
    "reply_to": 1 << 9,
    "expiration": 1 << 8,
    "message_id": 1 << 7,
    "timestamp": 1 << 6,
    "type": 1 << 5,
    "user_id": 1 << 4,
    "app_id": 1 << 3,
}


class Job(BaseModel):
    """The payload of every message in these tests."""

    n: int


def shortstr(raw: bytes) -> bytes:
    """An AMQP short string: one length octet, then the bytes (no UTF-8 check here)."""
    return struct.pack(">B", len(raw)) + raw


def longstr(raw: bytes) -> bytes:
    """A field-table value of type ``S`` (long string): a 32-bit length, then the bytes."""
    return b"S" + struct.pack(">I", len(raw)) + raw


def table(entries: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A field table: a 32-bit size, then (short-string key, typed value) pairs.

    Each value is already encoded with its type octet (see :func:`longstr`), so a key or
    a value can hold bytes pamqp would refuse to encode.
    """
    body = b"".join(shortstr(key) + value for key, value in entries)
    return struct.pack(">I", len(body)) + body


def content_header(
    body_size: int,
    *,
    content_type: bytes | None = b"application/json",
    headers: bytes | None = None,
    delivery_mode: int = 2,
    message_id: bytes | None = None,
    timestamp: int | None = None,
) -> bytes:
    """The payload of a content header frame for a ``basic.publish``, built by hand.

    Args:
        body_size: the size of the body that follows.
        content_type: raw bytes of the ``content_type`` short string (may be bad UTF-8).
        headers: a raw field table (see :func:`table`), or ``None``.
        delivery_mode: 2 is persistent.
        message_id: raw bytes of the ``message_id`` short string.
        timestamp: a raw 64-bit ``timestamp`` (may be out of any calendar's range).
    """
    present: dict[str, bytes] = {}
    if content_type is not None:
        present["content_type"] = shortstr(content_type)
    if headers is not None:
        present["headers"] = headers
    present["delivery_mode"] = struct.pack(">B", delivery_mode)
    if message_id is not None:
        present["message_id"] = shortstr(message_id)
    if timestamp is not None:
        present["timestamp"] = struct.pack(">Q", timestamp)
    flags = 0
    fields = b""
    for name, bit in _FLAGS.items():  # fields in flag order, whatever order they came in
        if name in present:
            flags |= bit
            fields += present[name]
    # class id 60 (basic), weight 0 (unused), the body size, the flags (bit 0 clear:
    # no second flags word), then the fields.
    return struct.pack(">HHQH", commands.Basic.frame_id, 0, body_size, flags) + fields


class RawPublisher:
    """A minimal AMQP 0-9-1 client that publishes with confirms, header frames built by hand.

    Usage::

        async with RawPublisher.connect(url) as raw:
            await raw.publish("", queue, body, content_header(len(body), timestamp=...))
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._frame_max = 131_072
        self._published = 0  # delivery tags of confirms count publishes from 1

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[RawPublisher]:
        """Connect, log in with PLAIN, open channel 1 in confirm mode; close at the end."""
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 5672)
        raw = cls(reader, writer)
        try:
            await asyncio.wait_for(
                raw._handshake(parts.username or "guest", parts.password or "guest"), 10
            )
            yield raw
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handshake(self, user: str, password: str) -> None:
        # The protocol header "AMQP" 0 0 9 1 asks for AMQP 0-9-1; the server answers
        # connection.start.
        self._writer.write(frame.marshal(ProtocolHeader(), 0))
        await self._expect(commands.Connection.Start)
        # PLAIN: authzid (empty), NUL, user, NUL, password.
        self._send(
            commands.Connection.StartOk(
                client_properties={"product": "burrowmq hostile test client"},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
                locale="en_US",
            ),
            0,
        )
        tune = await self._expect(commands.Connection.Tune)
        self._frame_max = tune.frame_max or self._frame_max
        # Heartbeat 0: none (the test's connection is short-lived).
        self._send(commands.Connection.TuneOk(tune.channel_max, self._frame_max, 0), 0)
        self._send(commands.Connection.Open(virtual_host="/"), 0)
        await self._expect(commands.Connection.OpenOk)
        self._send(commands.Channel.Open(), 1)
        await self._expect(commands.Channel.OpenOk)
        self._send(commands.Confirm.Select(), 1)  # every publish is then acked or nacked
        await self._expect(commands.Confirm.SelectOk)

    def _send(self, method: Any, channel: int) -> None:
        self._writer.write(frame.marshal(method, channel))

    async def _read_frame(self) -> tuple[int, Any]:
        # A frame: type octet, channel (16 bits), size (32 bits), payload, 0xCE.
        start = await self._reader.readexactly(7)
        size = struct.unpack(">I", start[3:7])[0]
        rest = await self._reader.readexactly(size + 1)
        _, channel, value = frame.unmarshal(start + rest)
        return channel, value

    async def _expect(self, kind: type) -> Any:
        while True:
            _, value = await self._read_frame()
            if isinstance(value, kind):
                return value
            if isinstance(value, commands.Connection.Close | commands.Channel.Close):
                raise ConnectionError(f"the broker closed: {value.reply_code} {value.reply_text}")
            # anything else (a heartbeat, say) is of no interest here

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, header: bytes, *, timeout: float = 10
    ) -> None:
        """Publish ``body`` with the hand-built content ``header``; wait for its confirm.

        Raises:
            ConnectionError: the broker nacked it or closed the channel.
        """
        self._send(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), 1)
        self._writer.write(struct.pack(">BHI", _HEADER_FRAME, 1, len(header)) + header + _FRAME_END)
        for start in range(0, len(body), self._frame_max - 8):  # 8: a frame's overhead
            chunk = body[start : start + self._frame_max - 8]
            self._writer.write(frame.marshal(ContentBody(chunk), 1))
        self._published += 1
        tag = self._published
        while True:
            _, value = await asyncio.wait_for(self._read_frame(), timeout)
            if isinstance(value, commands.Basic.Nack):
                raise ConnectionError(f"the broker nacked publish {tag}")
            if isinstance(value, commands.Basic.Ack) and (
                value.delivery_tag == tag or (value.multiple and value.delivery_tag >= tag)
            ):
                return
            if isinstance(value, commands.Connection.Close | commands.Channel.Close):
                raise ConnectionError(f"the broker closed: {value.reply_code} {value.reply_text}")


@dataclass
class Traffic:
    """Good messages on every queue of a service, and calls of one of its procedures.

    :meth:`add_routes` adds a good quorum work queue and an RPC procedure to the router;
    the test's own routes hand the good messages they get to :meth:`handled` (a good
    message has a message id starting with ``g``). :meth:`running` publishes and calls
    in a loop until it ends, then waits until every confirmed message was handled.
    """

    queues: list[str] = field(default_factory=list)
    procedure: str | None = None
    pause: float = 0.05
    tally: Tally = field(default_factory=Tally)
    confirmed: dict[int, str] = field(default_factory=dict)  # n -> queue
    wrong_queue: list[tuple[int, str]] = field(default_factory=list)
    publish_errors: Counter[str] = field(default_factory=Counter)
    calls_ok: int = 0
    call_errors: Counter[str] = field(default_factory=Counter)
    _next: int = 0

    def add_routes(self, router: Router, queue: str, service: str) -> None:
        """Add a good work queue ``queue`` and the procedure ``<service>.echo``."""
        self.queues.append(queue)
        self.procedure = f"{service}.echo"

        @router.consume(queue, queue_options={})
        async def good(job: Job) -> None:
            self.handled(queue, job.n)

        @router.rpc(self.procedure)
        async def echo(job: Job) -> Job:
            return job

    def watch(self, queue: str) -> None:
        """Also publish good messages to ``queue`` (a route of the test's own)."""
        self.queues.append(queue)

    @staticmethod
    def is_good(message: Message) -> bool:
        """Whether ``message`` is one of this traffic's good messages."""
        return (message.message_id or "").startswith("g")

    def handled(self, queue: str, n: int) -> None:
        """Record that the route on ``queue`` handled good message ``n``."""
        expected = self.confirmed.get(n)
        if expected is not None and expected != queue:
            self.wrong_queue.append((n, queue))
        self.tally.add(n)

    def handled_on(self, queue: str) -> int:
        """Distinct good messages of ``queue`` handled so far."""
        return sum(1 for n in self.tally.seen if self.confirmed.get(n) == queue)

    async def advance(self, by: int = 5, timeout: float = 20.0) -> None:
        """Wait until every queue handled ``by`` more good messages and ``by`` more calls
        succeeded: the service still serves on every route."""
        marks = {queue: self.handled_on(queue) for queue in self.queues}
        calls = self.calls_ok
        await wait_for(
            lambda: (
                all(self.handled_on(q) >= marks[q] + by for q in self.queues)
                and (self.procedure is None or self.calls_ok >= calls + by)
            ),
            timeout,
            f"{by} more good messages on each of {len(self.queues)} queues and {by} more calls",
        )

    async def _loop(self, app: App, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for queue in self.queues:
                self._next += 1
                n = self._next
                try:
                    await app.publish("", Job(n=n), routing_key=queue, message_id=f"g{n}")
                except BurrowError as exc:
                    self.publish_errors[type(exc).__name__] += 1
                else:
                    self.confirmed[n] = queue
            if self.procedure is not None:
                self._next += 1
                try:
                    reply = await app.call(self.procedure, Job(n=self._next), timeout=10)
                except BurrowError as exc:
                    self.call_errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                else:
                    if reply == {"n": self._next}:
                        self.calls_ok += 1
                    else:
                        self.call_errors[f"wrong reply {reply!r}"[:80]] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.pause)

    @contextlib.asynccontextmanager
    async def running(self, app: App, *, settle: float = 20.0) -> AsyncIterator[Traffic]:
        """Send traffic while the block runs; after it, wait for the confirmed to be handled.

        When the block fails, the traffic stops at once, without waiting.
        """
        stop = asyncio.Event()
        task = asyncio.create_task(self._loop(app, stop), name="hostile-traffic")
        try:
            yield self
        finally:
            stop.set()
            await task
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if not self.missing:
                break
            await asyncio.sleep(0.05)

    @property
    def missing(self) -> set[int]:
        """Good messages confirmed but not handled (yet)."""
        return set(self.confirmed) - set(self.tally.seen)

    def summary(self) -> str:
        """One line of figures."""
        return (
            f"good: {len(self.confirmed)} confirmed on {len(self.queues)} queues, "
            f"{self.tally.unique} handled (duplicates {self.tally.duplicates}), "
            f"lost {len(self.missing)}, publish errors {dict(self.publish_errors)}; "
            f"calls ok {self.calls_ok}, failed {sum(self.call_errors.values())}"
        )

    def check(self) -> None:
        """Assert nothing good was lost, misrouted or failed."""
        assert not self.missing, f"confirmed but never handled: {sorted(self.missing)[:20]}"
        assert not self.wrong_queue, f"handled on the wrong queue: {self.wrong_queue[:10]}"
        assert not self.publish_errors, f"good publishes failed: {dict(self.publish_errors)}"
        assert not self.call_errors, f"good calls failed: {dict(self.call_errors)}"
        assert self.confirmed, "no good message was confirmed"
        assert self.procedure is None or self.calls_ok, "no call succeeded"


def service_name() -> str:
    """A unique RPC service name (its queue is ``rpc.<name>``)."""
    return f"hostile{uuid.uuid4().hex[:8]}"


def values_text(events: Sequence[Mapping[str, Any]]) -> str:
    """Every value of every captured log event, as text (exceptions with their traceback)."""
    parts: list[str] = []
    for event in events:
        for value in event.values():
            parts.append(str(value))
            if isinstance(value, BaseException):
                parts.append("".join(traceback.format_exception(value)))
    return "\n".join(parts)


async def direct_reply_to_address(channel: aio_pika.abc.AbstractChannel) -> str:
    """A real direct reply-to address of this node, as RabbitMQ hands one to a publisher.

    Consumes ``amq.rabbitmq.reply-to`` and sends itself a message through a temporary
    queue: the broker rewrites the ``reply_to`` to ``amq.rabbitmq.reply-to.<pid>.<key>``.
    """

    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        return None

    replies = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    tag = await replies.consume(ignore, no_ack=True)
    probe = await channel.declare_queue("", exclusive=True, auto_delete=True)
    try:
        await channel.default_exchange.publish(
            aio_pika.Message(b"probe", reply_to="amq.rabbitmq.reply-to"), routing_key=probe.name
        )
        message = await probe.get(timeout=5)
        assert message.reply_to and message.reply_to.startswith("amq.rabbitmq.reply-to.")
        return message.reply_to
    finally:
        await replies.cancel(tag)
        await probe.delete()


def hostile_reply_tos(real: str, count: int) -> list[str]:
    """``count`` direct reply-to addresses a broker would choke on, derived from ``real``.

    Kinds, in turn: no address at all (``AAAA``), truncated base64 of the real pid
    (``g2dk...`` / ``g1h2...`` cut short), garbage after the prefix, and the nastiest, a
    well-formed address whose node hash is forged (``reply@<other digits>``): only the
    broker can tell that no such node exists, and RabbitMQ 3.x then closes the
    connection that published the reply.
    """
    prefix = "amq.rabbitmq.reply-to."
    encoded, _, key = real[len(prefix) :].partition(".")
    raw = base64.b64decode(encoded)
    at = raw.index(b"reply@") + len(b"reply@")
    digits = bytes(raw[at : at + 8])
    forged_digits = bytes((b - 48 + 1) % 10 + 48 if 48 <= b <= 57 else b for b in digits)
    forged = raw[:at] + forged_digits + raw[at + len(digits) :]
    kinds = [
        prefix + "AAAA",
        prefix + encoded[: len(encoded) // 2],
        prefix + encoded[:-6] + "." + key,
        prefix + "%%garbage%%." + key,
        prefix + base64.b64encode(forged).decode("ascii") + "." + key,
    ]
    return [kinds[i % len(kinds)] for i in range(count)]
