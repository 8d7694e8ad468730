"""Differential test: random topologies route on the memory transport as on RabbitMQ.

Hypothesis draws a topology (exchanges of every type with alternate exchanges, some of
them missing; exchange-to-exchange bindings, cycles included; topic patterns with `*`,
`#` and empty words; headers bindings in all four x-match modes with values of mixed
AMQP types) and a handful of messages. Each case is declared twice — on a fresh
in-memory broker through :class:`MemoryTransport`, and on the real RabbitMQ through one
raw aiormq connection — and the set of queues each message reaches must be the same.
RabbitMQ is the reference: a difference is a bug on our side.

The broker is the one at ``BURROWMQ_TEST_URL``; the memory broker emulates the version it
announces (server property "version"), as ``memory://NAME?rabbitmq=VERSION``, so the same
cases hold the 3.x rules against RabbitMQ 3.10 and the 4.x rules against 4.x. Header
values go out as burrowmq sends them (floats as 64-bit doubles).

The broker side runs over one connection and channel for every case; messages are
published with confirms, then read back with ``basic.get``. Queues are exclusive, and
exchanges are deleted after each case.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiormq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as spec

from burrowmq.amqp import frames
from burrowmq.framework.transport import Properties
from burrowmq.memory.transport import MemoryTransport

pytestmark = pytest.mark.contract

frames.install()  # header values go out as burrowmq sends them: floats as doubles

CASES = 250
TYPES = ("direct", "fanout", "topic", "headers")
MODES = ("all", "any", "all-with-x", "any-with-x")
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
EPOCH_S = int(EPOCH.timestamp())
EPOCH_MS = EPOCH_S * 1000

# Header values of every AMQP type pamqp sends, with the pairs RabbitMQ's matching
# treats specially: 1 and 1.0 (equal on 3.x only), 0.0 and -0.0 (likewise), True and 1,
# floats at full precision, decimals with their scale, a timestamp and its epoch seconds
# (3.x) or milliseconds (4.x), str and bytearray, [] and {}.
VALUES = st.one_of(
    st.integers(-1, 2),
    st.sampled_from([0.5, 1.0, 2.0, 16777217.0, 0.0, -0.0]),
    st.just(16777217),
    st.booleans(),
    st.sampled_from(["", "1", "a", "true"]),
    st.sampled_from([Decimal("1"), Decimal("1.0"), Decimal("1.00")]),
    st.sampled_from([EPOCH, EPOCH_S, EPOCH_MS]),
    st.just(bytearray(b"a")),
    st.sampled_from(["list1", "list1.0", "lista", "list", "dict", "dict1"]).map(
        lambda tag: {
            "list1": [1],
            "list1.0": [1.0],
            "lista": ["a"],
            "list": [],
            "dict": {},
            "dict1": {"k": 1},
        }[tag]
    ),
)
HEADER_KEYS = st.sampled_from(["k1", "k2", "x-k"])
TOPIC_WORDS = st.sampled_from(["a", "b", "", "*", "#"])
KEY_WORDS = st.sampled_from(["a", "b", "", "#", "*"])


def _twins(value: Any) -> list[Any]:
    """Values RabbitMQ might or might not take as equal to ``value``: the hard cases."""
    if isinstance(value, bool):
        return [int(value), str(value).lower()]
    if isinstance(value, int):
        return [float(value), value == 1, str(value), Decimal(value), EPOCH]
    if isinstance(value, float):
        return [int(value), Decimal(str(value)), -value]
    if isinstance(value, Decimal):
        return [Decimal(f"{value:.2f}"), Decimal(int(value)), int(value)]
    if isinstance(value, str):
        return [bytearray(value.encode()), value.upper(), None]
    if isinstance(value, bytearray):
        return [value.decode()]
    if isinstance(value, datetime.datetime):
        seconds = int(value.timestamp())
        return [seconds, seconds + 1, seconds * 1000, float(seconds)]
    if isinstance(value, list):
        return [[float(v) if isinstance(v, int) else v for v in value], {}]
    if isinstance(value, dict):
        return [[], {"k": 1.0}]
    return [1]


@dataclass(frozen=True)
class Case:
    """One generated topology and the messages published into it."""

    exchanges: tuple[tuple[str, int | None], ...]  # (type, alternate index; == len: missing)
    queues: int
    bindings: tuple[tuple[int, bool, int, str, dict[str, Any]], ...]  # src, to_ex, dst, key, args
    messages: tuple[tuple[int, str, dict[str, Any] | None], ...]  # exchange (-1: ""), key, headers


@st.composite
def binding_arguments(draw: st.DrawFn) -> dict[str, Any]:
    args: dict[str, Any] = draw(
        st.dictionaries(HEADER_KEYS, VALUES | st.none(), min_size=1, max_size=3)
    )
    mode = draw(st.sampled_from([None, *MODES]))
    if mode is not None:
        args["x-match"] = mode
    return args


@st.composite
def message_key(draw: st.DrawFn, binding_keys: list[str]) -> str:
    """A routing key: a binding key as is, with its wildcards filled in, or a fresh one."""
    how = draw(st.sampled_from(["as is", "filled", "fresh"]))
    if how == "fresh" or not binding_keys:
        return ".".join(draw(st.lists(KEY_WORDS, max_size=4)))
    key = draw(st.sampled_from(binding_keys))
    if how == "as is":
        return key
    fill = {"*": st.sampled_from(["a", "", "b"]), "#": st.sampled_from(["", "a", "a.b", "."])}
    words = [draw(fill[w]) if w in fill else w for w in key.split(".")]
    return ".".join(w for w in words)


@st.composite
def message_headers(draw: st.DrawFn, binding_args: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Headers: none, a binding's own values (some swapped for a tricky twin), or fresh."""
    how = draw(st.sampled_from(["none", "copied", "copied", "fresh"]))
    if how == "none":
        return None
    if how == "fresh" or not binding_args:
        return draw(st.dictionaries(HEADER_KEYS, VALUES | st.none(), max_size=3))
    source = draw(st.sampled_from(binding_args))
    headers: dict[str, Any] = {}
    for key, value in source.items():
        if key == "x-match" or draw(st.integers(0, 5)) == 0:
            continue  # sometimes a key is left out
        if value is None or draw(st.booleans()):
            headers[key] = 1 if value is None else value
        else:
            headers[key] = draw(st.sampled_from(_twins(value)))
    return headers


@st.composite
def cases(draw: st.DrawFn) -> Case:
    count = draw(st.integers(1, 5))
    exchanges = tuple(
        (draw(st.sampled_from(TYPES)), draw(st.sampled_from([None, *range(count + 1)])))
        for _ in range(count)
    )
    queues = draw(st.integers(1, 4))
    source = st.integers(0, count - 1)
    pattern = st.lists(TOPIC_WORDS, max_size=3).map(".".join)
    bindings = []
    for queue in range(queues):  # every queue is bound at least once
        for _ in range(draw(st.integers(1, 3))):
            args = draw(binding_arguments())
            bindings.append((draw(source), False, queue, draw(pattern), args))
    for _ in range(draw(st.integers(0, 4))):  # exchange-to-exchange, cycles included
        args = draw(binding_arguments())
        bindings.append((draw(source), True, draw(source), draw(pattern), args))
    keys = [b[3] for b in bindings]
    args_seen = [b[4] for b in bindings]
    messages = tuple(
        (
            draw(st.sampled_from([-1, *range(count), *range(count), *range(count)])),
            draw(message_key(keys)),
            draw(message_headers(args_seen)),
        )
        for _ in range(draw(st.integers(2, 8)))
    )
    return Case(exchanges, queues, tuple(bindings), messages)


class Names:
    """The names of one case's exchanges and queues, under a unique prefix."""

    def __init__(self, case: Case) -> None:
        prefix = f"t.diff.{uuid.uuid4().hex[:10]}"
        self.exchanges = [f"{prefix}.x{i}" for i in range(len(case.exchanges))]
        self.missing = f"{prefix}.missing"
        self.queues = [f"{prefix}.q{i}" for i in range(case.queues)]

    def alternate(self, index: int | None) -> dict[str, Any]:
        if index is None:
            return {}
        name = self.exchanges[index] if index < len(self.exchanges) else self.missing
        return {"alternate-exchange": name}

    def binding(self, to_exchange: bool, index: int) -> tuple[bool, str]:
        if to_exchange:
            return True, self.exchanges[index % len(self.exchanges)]
        return False, self.queues[index % len(self.queues)]

    def target(self, case: Case, index: int, key: str) -> tuple[str, str]:
        """The exchange and routing key of a message; the default exchange gets a queue name."""
        if index >= 0:
            return self.exchanges[index], key
        # Default exchange: the key names a queue (or one that does not exist).
        return "", self.queues[len(key) % len(self.queues)] if len(key) % 3 else self.missing


def reached(found: dict[str, set[int]], names: Names) -> dict[int, set[str]]:
    by_message: dict[int, set[str]] = {}
    for queue, indexes in found.items():
        short = queue.rsplit(".", 1)[-1]
        for index in indexes:
            by_message.setdefault(index, set()).add(short)
    return by_message


async def on_memory(case: Case, names: Names, version: str) -> dict[int, set[str]]:
    """Route the case on a fresh memory broker that emulates RabbitMQ ``version``."""
    transport = MemoryTransport(url=f"memory://diff-{uuid.uuid4().hex}?rabbitmq={version}")
    await transport.connect()
    try:
        for name, (kind, alternate) in zip(names.exchanges, case.exchanges, strict=True):
            await transport.declare_exchange(
                name, kind, durable=False, arguments=names.alternate(alternate)
            )
        for name in names.queues:
            await transport.declare_queue(name, durable=False, exclusive=True)
        for source, to_exchange, dest, key, args in case.bindings:
            is_exchange, target = names.binding(to_exchange, dest)
            bind = transport.bind_exchange if is_exchange else transport.bind_queue
            await bind(target, names.exchanges[source], key, args)
        for number, (index, key, headers) in enumerate(case.messages):
            exchange, routing_key = names.target(case, index, key)
            properties = Properties(headers=dict(headers or {}), message_id=str(number))
            await transport.publish(exchange, routing_key, str(number).encode(), properties)
        found = {q: {int(m.body) for m in transport.broker.messages(q)} for q in names.queues}
    finally:
        await transport.close()
    return reached(found, names)


async def on_rabbitmq(
    channel: aiormq.abc.AbstractChannel, case: Case, names: Names
) -> dict[int, set[str]]:
    try:
        for name, (kind, alternate) in zip(names.exchanges, case.exchanges, strict=True):
            await channel.exchange_declare(
                name, exchange_type=kind, durable=False, arguments=names.alternate(alternate)
            )
        for name in names.queues:
            await channel.queue_declare(name, durable=False, exclusive=True)
        for source, to_exchange, dest, key, args in case.bindings:
            is_exchange, target = names.binding(to_exchange, dest)
            if is_exchange:
                await channel.exchange_bind(target, names.exchanges[source], key, arguments=args)
            else:
                await channel.queue_bind(target, names.exchanges[source], key, arguments=args)
        for number, (index, key, headers) in enumerate(case.messages):
            exchange, routing_key = names.target(case, index, key)
            properties = spec.Basic.Properties(headers=dict(headers) if headers else None)
            await channel.basic_publish(
                str(number).encode(), exchange=exchange, routing_key=routing_key,
                properties=properties,
            )  # fmt: skip
        found: dict[str, set[int]] = {}
        for queue in names.queues:
            found[queue] = set()
            while True:
                message = await channel.basic_get(queue, no_ack=True)
                if isinstance(message.delivery, spec.Basic.GetEmpty):
                    break
                found[queue].add(int(message.body))
        return reached(found, names)
    finally:
        for name in names.queues:
            await channel.queue_delete(name)
        for name in names.exchanges:
            await channel.exchange_delete(name)


def describe(case: Case, names: Names) -> str:
    lines = ["exchanges:"]
    for name, (kind, alternate) in zip(names.exchanges, case.exchanges, strict=True):
        lines.append(f"  {name.rsplit('.', 1)[-1]} {kind} {names.alternate(alternate)}")
    lines.append("bindings:")
    for source, to_exchange, dest, key, args in case.bindings:
        _, target = names.binding(to_exchange, dest)
        lines.append(f"  x{source} -> {target.rsplit('.', 1)[-1]} key={key!r} args={args!r}")
    lines.append("messages:")
    for number, (index, key, headers) in enumerate(case.messages):
        exchange, routing_key = names.target(case, index, key)
        lines.append(f"  #{number} to {exchange.rsplit('.', 1)[-1] or '(default)'} "
                     f"key={routing_key.rsplit('.', 1)[-1] if index < 0 else routing_key!r} "
                     f"headers={headers!r}")  # fmt: skip
    return "\n".join(lines)


@dataclass(frozen=True)
class Reference:
    """The real broker: one confirming channel, and the version the broker announced."""

    channel: aiormq.abc.AbstractChannel
    version: str


@pytest.fixture
async def reference(broker_url: str) -> AsyncIterator[Reference]:
    """One confirming channel on the real broker, shared by every generated case."""
    connection = await aiormq.connect(broker_url)
    version = connection.server_properties["version"]
    try:
        channel = await connection.channel(publisher_confirms=True)
        yield Reference(channel, version.decode() if isinstance(version, bytes) else str(version))
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def tally() -> list[str]:
    """The broker version of each generated case compared (shared across tests)."""
    return []


class TestDifferentialRouting:
    """The memory transport routes every generated case exactly as RabbitMQ does."""

    @settings(
        max_examples=CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=cases())
    async def test_same_queues_as_rabbitmq(
        self, case: Case, reference: Reference, tally: list[str]
    ) -> None:
        """Each message reaches the same set of queues on both transports."""
        names = Names(case)
        expected = await on_rabbitmq(reference.channel, case, names)
        actual = await on_memory(case, names, reference.version)
        tally.append(reference.version)
        assert actual == expected, f"RabbitMQ {reference.version}\n" + describe(case, names)

    def test_enough_cases_were_compared(self, tally: list[str]) -> None:
        """At least 200 generated cases ran against both transports in this run."""
        assert len(tally) >= 200
