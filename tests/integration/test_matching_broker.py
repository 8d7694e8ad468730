"""The routing tables of tests/unit/framework/test_matching.py, replayed on the real broker.

The broker is the one at ``BURROWMQ_TEST_URL`` (the ``broker_url`` fixture); the rows
replayed are those that hold for the rules of the version it announces (server property
"version": 3.10 to 3.12 -> ``Rules.RABBITMQ_3``, 3.13 and later -> ``Rules.RABBITMQ_4``),
and matching.py is asked with those rules. Values are encoded as burrowmq encodes them
(floats as 64-bit doubles: ``burrowmq.amqp.frames.install``).

For topic and headers, one exchange per table gets one server-named exclusive queue per
distinct binding, and one confirmed, mandatory message per distinct routing key or
headers; `basic.get` then shows which queues each message reached. So besides every row
of the table, every binding is checked against every message, and each "returned or
not" against whether any queue got the message. The routing scenarios are built one by
one under a unique prefix. Everything created is deleted; the queues are exclusive, so
a crash leaves nothing behind either.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import AsyncIterator, Hashable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aio_pika.exceptions import PublishError

from burrowmq.amqp import frames
from burrowmq.framework.matching import (
    Rules,
    compile_headers,
    headers_match,
    route,
    rules_for,
    topic_matches,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

frames.install()  # header values go out as burrowmq sends them: floats as doubles


def _load_tables() -> ModuleType:
    # One table, two checks: import the unit test module's tables by path, since test
    # folders are not packages.
    path = Path(__file__).resolve().parents[1] / "unit" / "framework" / "test_matching.py"
    spec = importlib.util.spec_from_file_location("_burrowmq_matching_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tables = _load_tables()


@pytest.fixture
async def connection(broker_url: str) -> AsyncIterator[AbstractConnection]:
    """A connection to the test broker (skipped, or failed where CI=true, without one)."""
    connection = await aio_pika.connect(broker_url, timeout=10)
    try:
        yield connection
    finally:
        await connection.close()


def broker_rules(connection: AbstractConnection) -> Rules:
    """The headers-matching rules of the broker's announced version."""
    assert connection.transport is not None, "not connected"
    version = connection.transport.connection.server_properties["version"]
    return rules_for(version.decode() if isinstance(version, bytes) else str(version))


def distinct(items: Sequence[Any]) -> list[Any]:
    """The items without repeats, in first-seen order; dicts compare by repr."""
    seen: dict[Hashable, Any] = {}
    for item in items:
        seen.setdefault(repr(item), item)
    return list(seen.values())


async def observe(
    channel: AbstractChannel,
    kind: str,
    bindings: list[tuple[str, dict[str, Any] | None]],
    messages: list[tuple[str, dict[str, Any] | None]],
) -> tuple[list[list[bool]], list[bool]]:
    """Bind one queue per (key, arguments) and publish each (routing key, headers).

    Returns:
        got[m][b]: whether message m reached the queue of binding b; and routed[m]:
        whether the broker accepted message m without returning it.
    """
    name = f"burrowmq.test.matching.{uuid.uuid4().hex}"
    exchange = await channel.declare_exchange(name, kind, auto_delete=True)
    queues: list[AbstractQueue] = []
    try:
        for key, arguments in bindings:
            queue = await channel.declare_queue(exclusive=True)
            queues.append(queue)
            await queue.bind(exchange, routing_key=key, arguments=arguments)
        routed: list[bool] = []
        for index, (routing_key, headers) in enumerate(messages):
            message = aio_pika.Message(str(index).encode(), headers=headers)
            try:
                await exchange.publish(message, routing_key=routing_key, mandatory=True)
            except PublishError:
                routed.append(False)
            else:
                routed.append(True)
        got = [[False] * len(bindings) for _ in messages]
        for column, queue in enumerate(queues):
            while (delivered := await queue.get(no_ack=True, fail=False)) is not None:
                got[int(delivered.body)][column] = True
        return got, routed
    finally:
        for queue in queues:
            await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()


async def test_broker_version_has_rules(connection: AbstractConnection) -> None:
    """The broker announces a version that picks a rule set (else nothing here can run)."""
    assert broker_rules(connection) in Rules


@pytest.mark.timeout(60)
async def test_topic_table_matches_broker(connection: AbstractConnection) -> None:
    """Every topic row, and every pattern against every key, routes as on RabbitMQ."""
    cases: list[tuple[str, str, bool]] = tables.TOPIC_CASES
    patterns = distinct([pattern for pattern, _, _ in cases])
    keys = distinct([key for _, key, _ in cases])
    channel = await connection.channel(on_return_raises=True)
    got, routed = await observe(
        channel, "topic", [(p, None) for p in patterns], [(k, None) for k in keys]
    )

    wrong: list[tuple[Any, ...]] = [
        ("table", pattern, key, expected)
        for pattern, key, expected in cases
        if got[keys.index(key)][patterns.index(pattern)] is not expected
    ]
    wrong += [
        ("matching.py", pattern, key, got[row][column])
        for row, key in enumerate(keys)
        for column, pattern in enumerate(patterns)
        if topic_matches(pattern, key) is not got[row][column]
    ]
    wrong += [("returned", key) for row, key in enumerate(keys) if routed[row] is not any(got[row])]
    assert wrong == []


@pytest.mark.timeout(60)
async def test_headers_table_matches_broker(connection: AbstractConnection) -> None:
    """Every headers row of the broker's rules, and every binding against every message,
    routes as on RabbitMQ, and as matching.py says with those rules."""
    rules = broker_rules(connection)
    cases: list[tuple[dict[str, Any], dict[str, Any] | None, bool]] = [
        (args, found, expected)
        for args, found, expected, holds_for in tables.HEADERS_CASES
        if rules in holds_for
    ]
    arguments = distinct([args for args, _, _ in cases])
    headers = distinct([found for _, found, _ in cases])
    channel = await connection.channel(on_return_raises=True)
    got, routed = await observe(
        channel, "headers", [("", a) for a in arguments], [("", h) for h in headers]
    )

    # by repr, since {"a": True} == {"a": 1} in Python but not on the broker
    rows = {repr(found): row for row, found in enumerate(headers)}
    columns = {repr(args): column for column, args in enumerate(arguments)}

    def cell(args: dict[str, Any], found: dict[str, Any] | None) -> bool:
        return got[rows[repr(found)]][columns[repr(args)]]

    wrong: list[tuple[Any, ...]] = [
        ("table", args, found, expected)
        for args, found, expected in cases
        if cell(args, found) is not expected
    ]
    wrong += [
        ("matching.py", args, found, cell(args, found))
        for found in headers
        for args in arguments
        if headers_match(args, found, rules=rules) is not cell(args, found)
    ]
    wrong += [
        ("returned", found) for row, found in enumerate(headers) if routed[row] is not any(got[row])
    ]
    assert wrong == []


@pytest.mark.timeout(60)
async def test_invalid_x_match_is_refused_by_broker_too(connection: AbstractConnection) -> None:
    """Each x-match compile_headers refuses, RabbitMQ refuses with 406 at bind time."""
    rules = broker_rules(connection)
    refused: list[Any] = []
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        f"burrowmq.test.matching.{uuid.uuid4().hex}", "headers", auto_delete=True
    )
    queue = await channel.declare_queue(exclusive=True)
    try:
        for mode in tables.INVALID_X_MATCH:
            with pytest.raises(ValueError, match="invalid x-match"):
                compile_headers({"x-match": mode}, rules=rules)
            throwaway = await connection.channel()
            underlay = await throwaway.get_underlay_channel()
            try:
                await underlay.queue_bind(queue.name, exchange.name, arguments={"x-match": mode})
            except aiormq.exceptions.ChannelPreconditionFailed:
                refused.append(mode)
            else:
                await throwaway.close()
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    assert refused == tables.INVALID_X_MATCH


@pytest.mark.timeout(60)
async def test_route_scenarios_match_broker(connection: AbstractConnection) -> None:
    """Exchange-to-exchange bindings, alternate exchanges and cycles route as on RabbitMQ,
    and as route() says with the broker's rules (given to the graph, and to route)."""
    rules = broker_rules(connection)
    wrong: list[tuple[str, set[str], set[str], set[str]]] = []
    for case in tables.ROUTE_CASES:
        if rules not in case.holds_for:
            continue
        reached = await _broker_route(connection, case)
        ours = route(case.graph(rules), case.exchange, case.routing_key, case.headers)
        told = route(case.graph(), case.exchange, case.routing_key, case.headers, rules=rules)
        if not reached == ours == told == case.expected:
            wrong.append((case.id, reached, ours, told))
    assert wrong == []


async def _broker_route(connection: AbstractConnection, case: Any) -> set[str]:
    """Build one scenario under a unique prefix, publish into it, and see where it went."""
    prefix = f"burrowmq.test.matching.{uuid.uuid4().hex[:12]}."

    def name(entity: str) -> str:
        return prefix + entity if entity else ""

    channel = await connection.channel(on_return_raises=True)
    underlay = await channel.get_underlay_channel()
    queues: dict[str, AbstractQueue] = {}
    try:
        for spec in case.exchanges:
            ae = spec.alternate_exchange
            await channel.declare_exchange(
                name(spec.name),
                spec.type,
                auto_delete=True,
                arguments=None if ae is None else {"alternate-exchange": name(ae)},
            )
        for queue in case.queues:
            queues[queue] = await channel.declare_queue(name(queue), exclusive=True)
        for b in case.bindings:
            bind = underlay.queue_bind if b.destination_type == "queue" else underlay.exchange_bind
            await bind(
                name(b.destination), name(b.source), b.routing_key, arguments=dict(b.arguments)
            )
        key = name(case.routing_key) if case.exchange == "" else case.routing_key
        exchange = (
            channel.default_exchange
            if case.exchange == ""
            else await channel.get_exchange(name(case.exchange), ensure=False)
        )
        try:
            await exchange.publish(
                aio_pika.Message(b"m", headers=case.headers), key, mandatory=True
            )
            returned = False
        except PublishError:
            returned = True
        reached = {q for q, queue in queues.items() if await queue.get(no_ack=True, fail=False)}
        assert returned is not bool(reached), case.id
        return reached
    finally:
        for queue in queues.values():
            await queue.delete(if_unused=False, if_empty=False)
        for spec in case.exchanges:
            await underlay.exchange_delete(name(spec.name))
        await channel.close()
