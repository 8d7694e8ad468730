"""Hostile input and broker events on a private node: no single one takes a service down.

Each test throws one kind of bad input or broker event at a running service while good
messages keep flowing on every one of its queues and calls keep going to one of its
procedures (:class:`~tests.faults.hostile.Traffic`), and counts: confirmed good messages
lost (always 0), duplicates (printed), where every bad message ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import pytest
import structlog
import tenacity

from burrowmq import (
    BurrowError,
    ConfigurationError,
    Message,
    NoRoute,
    NoServer,
    PublishBatchError,
    PublishError,
    Reject,
    RemoteError,
    Retry,
    Router,
    TopologyError,
)
from burrowmq.routing.delay import LEVELS, OUTBOX, OUTBOX_DLQ, level_name
from tests.conftest import Names, app_factory
from tests.faults.conftest import CONSUMER_TIMEOUT_MS
from tests.faults.hostile import (
    PAST_YEAR_9999_US,
    Job,
    RawPublisher,
    Traffic,
    content_header,
    direct_reply_to_address,
    hostile_reply_tos,
    longstr,
    service_name,
    table,
    values_text,
)
from tests.faults.node import RabbitNode
from tests.faults.workload import Tally, drain, queue_depth, wait_for

pytestmark = pytest.mark.faults

BAD = 5  # bad messages per kind
NOT_UTF8 = b"\xff\xfe"
RECOVERY_EVENTS = ("connection_recovered", "reconnect_failed", "recovery_failed")


async def wait_depth(
    channel: aio_pika.abc.AbstractChannel,
    queue: str,
    count: int,
    timeout: float,
    why: Callable[[], str] | None = None,
) -> float:
    """Wait until ``queue`` holds at least ``count`` ready messages; return the seconds.

    ``why`` adds what the test saw meanwhile to the failure message.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while await queue_depth(channel, queue) < count:
        if loop.time() - started > timeout:
            depth = await queue_depth(channel, queue)
            seen = f" ({why()})" if why is not None else ""
            pytest.fail(f"{queue} holds {depth} messages, not {count}, after {timeout}s{seen}")
        await asyncio.sleep(0.1)
    return loop.time() - started


def events(logs: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    """The captured log events called one of ``names``."""
    return [entry for entry in logs if entry.get("event") in names]


def lost_since(logs: list[dict[str, Any]]) -> str:
    """How often the connections dropped and were recovered, for failure messages."""
    lost = len(events(logs, "connection_lost"))
    return f"connection lost {lost} times, {len(events(logs, *RECOVERY_EVENTS))} reconnects"


def queue_row(node: RabbitNode, queue: str, *columns: str) -> list[str]:
    """One queue's ``rabbitmqctl list_queues`` columns (after its name)."""
    out = node.ctl("list_queues", "name", *columns)
    for line in out.splitlines():
        parts = line.split("\t")
        if parts[0] == queue:
            return parts[1:]
    raise AssertionError(f"queue {queue} is not on the node: {out[-400:]}")


async def wait_settled(node: RabbitNode, queue: str, timeout: float) -> float:
    """Wait until ``queue`` holds no message, ready or unacknowledged (asked of the node)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    columns = ("messages_ready", "messages_unacknowledged")
    while (row := await asyncio.to_thread(queue_row, node, queue, *columns)) != ["0", "0"]:
        if loop.time() - started > timeout:
            pytest.fail(f"{queue} still holds ready/unacked {row} after {timeout}s")
        await asyncio.sleep(0.2)
    return loop.time() - started


def service(router: Router, names: Names, traffic: Traffic) -> str:
    """Give ``router`` traffic's good work queue and procedure; return the service name."""
    name = service_name()
    names.add_queue(f"rpc.{name}")
    traffic.add_routes(router, names.queue("good"), name)
    return name


def json_body(n: int) -> bytes:
    """The body of a bad message: a valid payload, so only its properties are at fault."""
    return Job(n=n).model_dump_json().encode()


UNDECODABLE = {
    # (a) microseconds where seconds are meant: pamqp's datetime overflows
    "timestamp": {"timestamp": PAST_YEAR_9999_US},
    # (b) a short string that is not UTF-8
    "content_type": {"content_type": NOT_UTF8},
    # (c) a header name (a short string) that is not UTF-8: the whole table fails
    "headers": {"headers": table([(NOT_UTF8, longstr(b"x")), (b"tenant", longstr(b"acme"))])},
}


class TestUndecodableProperties:
    @pytest.mark.timeout(90)
    @pytest.mark.parametrize("prop", sorted(UNDECODABLE))
    async def test_undecodable_property_is_dead_lettered_raw_and_the_connection_stays(
        self, make_app, names, amqp, node: RabbitNode, prop: str
    ) -> None:
        """A message whose property pamqp cannot decode is dead-lettered as a DecodeError naming it, raw value kept, without a reconnect."""
        queue = names.queue("work")
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        traffic.watch(queue)
        runs: Counter[str] = Counter()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=3, wait=0.05))
        async def work(job: Job, message: Message) -> None:
            if Traffic.is_good(message):
                traffic.handled(queue, job.n)
                return
            runs[message.message_id or "?"] += 1

        bad_ids = {f"bad-{i}" for i in range(BAD)}
        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name="undecodable") as app, traffic.running(app):
                await traffic.advance(3)
                async with RawPublisher.connect(node.url) as raw:
                    for i in range(BAD):
                        body = json_body(-i)
                        header = content_header(
                            len(body), message_id=f"bad-{i}".encode(), **UNDECODABLE[prop]
                        )
                        await raw.publish("", queue, body, header)
                took = await wait_depth(amqp, f"{queue}.dlq", BAD, 30, lambda: lost_since(logs))
                await traffic.advance(10)
                connected = app.transport.is_connected
        dead = await drain(amqp, f"{queue}.dlq")
        left = await queue_depth(amqp, queue)
        lost = events(logs, "connection_lost")
        recovered = events(logs, *RECOVERY_EVENTS)
        print(
            f"\n[undecodable {prop}] {BAD} bad messages in {took:.1f}s to the DLQ ({len(dead)}); "
            f"handler runs on them {sum(runs.values())}; connection lost {len(lost)}, "
            f"reconnects {len(recovered)}; left in queue {left}; {traffic.summary()}"
        )
        if dead:
            print(
                f"[undecodable {prop}] x-exception-message: {dead[0].headers.get('x-exception-message')!r}"
            )
        assert connected
        assert not lost, f"the connection dropped: {lost[:3]}"
        assert not recovered
        assert {m.message_id for m in dead} == bad_ids
        assert len(dead) == BAD
        for message in dead:
            headers = message.headers
            assert headers["x-exception-type"] == "DecodeError"
            assert prop in str(headers["x-exception-message"])
            kept = headers["x-undecodable-properties"]
            assert isinstance(kept, dict)
            if prop == "timestamp":
                assert kept["timestamp"] == PAST_YEAR_9999_US
            elif prop == "content_type":
                assert isinstance(kept["content_type"], bytearray | bytes)
                assert bytes(kept["content_type"]) == NOT_UTF8
            else:
                assert isinstance(kept["headers"], bytearray | bytes)
                assert NOT_UTF8 in bytes(kept["headers"])
            assert message.body == json_body(int(message.message_id.split("-")[1]) * -1)
        assert all(count <= 3 for count in runs.values()), f"looped: {dict(runs)}"
        assert left == 0
        traffic.check()

    @pytest.mark.timeout(90)
    async def test_header_value_not_utf8_is_dead_lettered_and_never_loops(
        self, make_app, names, amqp, node: RabbitNode
    ) -> None:
        """A header long string that is not UTF-8 (pamqp hands it over as bytes) costs at most its Retry attempts, then ends in the DLQ once."""
        queue = names.queue("work")
        names.add_queue(f"{queue}.retry.2s")
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        traffic.watch(queue)
        runs: Counter[str] = Counter()
        values: list[Any] = []

        # wait 1.5 s: the retries travel as copies through a broker delay queue, so both
        # the retry copy and the dead-letter copy carry the header
        @router.consume(queue, queue_options={}, retry=Retry(attempts=3, wait=1.5))
        async def work(job: Job, message: Message) -> None:
            if Traffic.is_good(message):
                traffic.handled(queue, job.n)
                return
            runs[message.message_id or "?"] += 1
            values.append(message.headers.get("tenant"))
            raise RuntimeError("cannot handle this one")

        bad_ids = {f"bad-{i}" for i in range(BAD)}
        header_table = table([(b"tenant", longstr(NOT_UTF8)), (b"ok", longstr(b"fine"))])
        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name="header-value") as app, traffic.running(app):
                await traffic.advance(3)
                async with RawPublisher.connect(node.url) as raw:
                    for i in range(BAD):
                        body = json_body(-i)
                        header = content_header(
                            len(body), message_id=f"bad-{i}".encode(), headers=header_table
                        )
                        await raw.publish("", queue, body, header)
                took = await wait_depth(amqp, f"{queue}.dlq", BAD, 40, lambda: lost_since(logs))
                seen = sum(runs.values())
                await asyncio.sleep(3)  # room for a looping copy to come back (tier 2 s)
                await traffic.advance(10)
                connected = app.transport.is_connected
        dead = await drain(amqp, f"{queue}.dlq")
        left = await queue_depth(amqp, queue)
        lost = events(logs, "connection_lost")
        print(
            f"\n[header value not UTF-8] {BAD} bad messages: handler runs {dict(runs)} "
            f"(values seen {sorted({repr(v) for v in values})}); in the DLQ after {took:.1f}s: "
            f"{len(dead)} ({Counter(m.headers.get('x-exception-type') for m in dead)}), "
            f"tenant there {sorted({repr(m.headers.get('tenant')) for m in dead})}; connection "
            f"lost {len(lost)}; left in queue {left}; {traffic.summary()}"
        )
        assert connected
        assert not lost, f"the connection dropped: {lost[:3]}"
        assert all(count <= 3 for count in runs.values()), f"looped: {dict(runs)}"
        assert sum(runs.values()) == seen, "the handler ran again after the DLQ had them all"
        assert sorted(m.message_id for m in dead) == sorted(bad_ids)
        for message in dead:
            assert message.headers["x-exception-type"] in {"RuntimeError", "DecodeError"}
            assert message.headers["ok"] == "fine"
        assert left == 0
        traffic.check()


class TestReconnectStorm:
    """A burst of closed connections costs few connection attempts and the app serves again.

    Both tests run :meth:`storm`: traffic first, then ``fault`` against the node, then the
    rest of a 10 s window, then traffic again; the window's log decides.
    """

    async def storm(
        self,
        make_app: Any,
        names: Names,
        name: str,
        fault: Callable[[], Awaitable[None]],
        what: str,
    ) -> None:
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name=name.replace(" ", "-")) as app:
                async with traffic.running(app):
                    await traffic.advance(3)
                mark = len(logs)
                started = time.monotonic()
                await fault()
                lasted = time.monotonic() - started
                if time.monotonic() < started + 10:
                    await asyncio.sleep(started + 10 - time.monotonic())  # the 10 s window
                window = logs[mark:]
                back = await wait_for(lambda: app.transport.is_connected, 60, "reconnection")
                async with traffic.running(app):
                    await traffic.advance(5, timeout=30)
        attempts = Counter(e.get("role", "?") for e in events(window, *RECOVERY_EVENTS))
        losses = Counter(e.get("role", "?") for e in events(window, "connection_lost"))
        print(
            f"\n[{name}] {what} for {lasted:.1f}s: in the 10 s window connections lost "
            f"{dict(losses)}, connection attempts {dict(attempts)} (total "
            f"{sum(attempts.values())}); connected again {back:.1f}s after it; "
            f"{traffic.summary()}"
        )
        assert losses, "no connection was lost: the fault did not happen"
        for role, count in attempts.items():
            assert count <= 15, f"{count} attempts of the {role} connection in 10 s"
        traffic.check()

    @pytest.mark.timeout(150)
    async def test_forced_disconnects_five_times_in_five_seconds_are_no_storm(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """Five close_all_connections in about 5 s cost at most 15 connection attempts per connection in 10 s, and the app serves again."""

        async def five_closes() -> None:
            started = time.monotonic()
            for i in range(5):
                await asyncio.to_thread(node.close_all_connections)
                pause = started + i + 1 - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)  # paces the faults: about one a second

        await self.storm(make_app, names, "storm", five_closes, "5 forced closes")

    @pytest.mark.timeout(150)
    async def test_connections_closed_as_soon_as_they_open_cost_few_attempts(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """For 5 s the node closes every connection as soon as it opens: at most 15 connection attempts per connection in 10 s, and the app serves again."""
        # One rabbitmqctl eval: every 50 ms for 5 s, close each client connection of the node
        # (connections/0 filtered to this node: 3.10 and 4.x both have it, under different
        # names for the local-only list).
        loop = (
            "Close = fun Close(0) -> ok; Close(N) -> "
            '[rabbit_networking:close_connection(P, "storm") '
            "|| P <- rabbit_networking:connections(), node(P) =:= node()], "
            "timer:sleep(50), Close(N - 1) end, Close(100)."
        )

        async def close_as_they_open() -> None:
            await asyncio.to_thread(node.eval, loop)

        await self.storm(
            make_app,
            names,
            "storm loop",
            close_as_they_open,
            "every connection closed as it opened",
        )


def consumers(node: RabbitNode, queue: str) -> set[str]:
    """The channels consuming ``queue``, as ``rabbitmqctl list_consumers`` shows them."""
    out = node.ctl("list_consumers", "queue_name", "channel_pid", "consumer_tag")
    return {
        "\t".join(line.split("\t")[1:]) for line in out.splitlines() if line.split("\t")[0] == queue
    }


class TestConsumerTimeout:
    @pytest.mark.timeout(150)
    async def test_consumer_is_back_after_the_broker_closed_its_channel(
        self, consumer_timeout_node: RabbitNode
    ) -> None:
        """A handler holding a delivery past consumer_timeout: the broker closes the channel, a consumer is back within 5 s, nothing is lost."""
        node = consumer_timeout_node
        registry = Names("consumer-timeout")
        queue = registry.queue("slow")
        done: Counter[int] = Counter()
        held, held_over = asyncio.Event(), asyncio.Event()
        router = Router()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=1))
        async def slow(job: Job, message: Message) -> None:
            if job.n == 1 and not held.is_set():
                held.set()
                try:
                    await asyncio.sleep(10)  # the long handler under test
                finally:
                    held_over.set()  # also if the consumer cancelled it
            done[job.n] += 1

        timed_out = "delivery acknowledgement on channel"
        try:
            with structlog.testing.capture_logs() as logs:
                async with app_factory(node.url) as factory:
                    app = factory(router, name="consumer-timeout")
                    await app.start()
                    await app.publish("", Job(n=1), routing_key=queue)
                    await asyncio.wait_for(held.wait(), 10)
                    delivered = time.monotonic()
                    first = await asyncio.to_thread(consumers, node, queue)
                    await wait_for(
                        lambda: timed_out in node.log_tail(300), 20, "the broker's consumer timeout"
                    )
                    closed = time.monotonic()
                    while not (await asyncio.to_thread(consumers, node, queue)) - first:
                        if time.monotonic() - closed > 15:
                            pytest.fail("no new consumer on the queue 15 s after the timeout")
                        await asyncio.sleep(0.1)
                    back = time.monotonic() - closed
                    await app.publish("", Job(n=2), routing_key=queue)
                    second = await wait_for(lambda: done[2] >= 1, 10, "message 2")
                    await asyncio.wait_for(held_over.wait(), 15)
                    settled = await wait_settled(node, queue, 30)
                    await app.stop()
        finally:
            with contextlib.suppress(Exception):
                await registry.cleanup(node.url)
        closures = node.log_tail(2000).count(timed_out)
        restored = [e["event"] for e in logs if "consumer" in str(e.get("event"))]
        print(
            f"\n[consumer_timeout {CONSUMER_TIMEOUT_MS} ms] message 1 held 10 s: the broker "
            f"closed the channel {closed - delivered:.1f}s after delivery; a new consumer "
            f"{back:.1f}s later; message 2 handled {second:.1f}s after publish; the broker "
            f"timed out {closures} deliveries in all; message 1 handled {done[1]} times "
            f"(duplicates {done[1] - 1}: the held run's ack died with its channel, and each "
            f"redelivery waits for it to end); all acked on the broker {settled:.1f}s after the "
            f"held run ended; consumer events {restored}"
        )
        assert back <= 5.0
        assert done[1] >= 1 and done[2] >= 1


class TestMissingExchange:
    @pytest.mark.timeout(120)
    async def test_publish_to_a_missing_exchange_fails_alone(self, make_app, names, amqp) -> None:
        """Among 1,000 concurrent publishes only the one to a missing exchange fails; a publish_many to it fails whole and exactly, beside one that is confirmed."""
        exchange, missing = names.exchange("there"), names.exchange("missing")
        sink = names.queue("sink")
        declared = await amqp.declare_exchange(exchange, "direct", durable=True)
        queue = await amqp.declare_queue(sink, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(declared, "k")
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        async with make_app(router, name="missing-exchange") as app, traffic.running(app):
            await traffic.advance(3)
            publishes = [
                app.publish(exchange, Job(n=i), routing_key="k", message_id=f"p{i}")
                for i in range(1000)
            ]
            publishes.insert(500, app.publish(missing, Job(n=-1), routing_key="k"))
            began = time.monotonic()
            outcomes = await asyncio.gather(*publishes, return_exceptions=True)
            single = time.monotonic() - began
            batches = await asyncio.gather(
                app.publish_many(missing, [Job(n=-i) for i in range(500)], routing_key="k"),
                app.publish_many(exchange, [Job(n=1000 + i) for i in range(500)], routing_key="k"),
                return_exceptions=True,
            )
            await traffic.advance(5)
        failed = {i: o for i, o in enumerate(outcomes) if isinstance(o, BaseException)}
        arrived = await drain(amqp, sink)
        ids = Counter(m.message_id for m in arrived)
        bad_batch, good_batch = batches
        print(
            f"\n[missing exchange] 1,001 concurrent publishes in {single:.1f}s: failed "
            f"{ {i: type(o).__name__ for i, o in failed.items()} }; publish_many to the missing "
            f"exchange: {type(bad_batch).__name__} (failures "
            f"{len(getattr(bad_batch, 'failures', []))}, confirmed "
            f"{getattr(bad_batch, 'confirmed', None)}); beside it: "
            f"{len(good_batch) if isinstance(good_batch, list) else repr(good_batch)[:80]}; "
            f"arrived {len(arrived)} (duplicates {sum(ids.values()) - len(ids)}); "
            f"{traffic.summary()}"
        )
        assert list(failed) == [500], f"failed beside it: {list(failed)[:20]}"
        assert isinstance(failed[500], PublishError)
        assert isinstance(bad_batch, PublishBatchError), repr(bad_batch)
        assert sorted(i for i, _ in bad_batch.failures) == list(range(500))
        assert bad_batch.confirmed == 0
        assert isinstance(good_batch, list) and len(good_batch) == 500, repr(good_batch)[:200]
        assert len(arrived) == 1500
        assert set(ids) >= {f"p{i}" for i in range(1000)} and set(ids) >= set(good_batch)
        traffic.check()


class TestMemoryAlarm:
    @pytest.mark.timeout(150)
    async def test_consumers_ack_through_a_memory_alarm_while_publishing_blocks(
        self, make_app, names, node: RabbitNode
    ) -> None:
        """During a memory alarm 1,800 waiting messages are all handled and acked, a publish fails naming the block, and publishing resumes after it."""
        total = 1800
        queue = names.queue("alarm")
        gate = asyncio.Event()
        tally = Tally(expect=total)
        router = Router()

        @router.consume(queue, queue_options={}, prefetch=64, concurrency=16)
        async def take(job: Job) -> None:
            await gate.wait()
            tally.add(job.n)

        error: BaseException | None = None
        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name="alarm") as app:
                await app.publish_many("", [Job(n=i) for i in range(total)], routing_key=queue)
                alarm_on = alarm_during = ""
                try:
                    await asyncio.to_thread(
                        node.ctl, "set_vm_memory_high_watermark", "absolute", "1"
                    )
                    await wait_for(lambda: "memory" in node.alarms(), 20, "the memory alarm")
                    alarm_on = node.alarms()
                    began = time.monotonic()
                    try:
                        await app.publish("", Job(n=-1), routing_key=queue, timeout=2)
                    except BurrowError as exc:
                        error = exc
                    refused = time.monotonic() - began
                    gate.set()
                    began = time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(tally.event.wait(), 60)
                    drained = time.monotonic() - began
                    settled = await wait_settled(node, queue, 20)
                    alarm_during = await asyncio.to_thread(node.alarms)
                finally:
                    await asyncio.to_thread(node.ctl, "set_vm_memory_high_watermark", "0.4")
                    await wait_for(lambda: node.alarms() == "[]", 30, "the alarm to clear")
                began = time.monotonic()
                await app.publish("", Job(n=-2), routing_key=queue, timeout=15)
                after = time.monotonic() - began
                await wait_for(lambda: -2 in tally.seen, 15, "a message after the alarm")
        blocked = [e for e in logs if "blocked" in str(e.get("event"))]
        handled = sum(1 for n in tally.seen if n >= 0)
        print(
            f"\n[memory alarm] alarm {alarm_on}: {handled}/{total} waiting messages handled "
            f"in {drained:.1f}s during it, all acked on the broker {settled:.1f}s later (alarm "
            f"still on: {'memory' in alarm_during}); publish with timeout=2 -> "
            f"{type(error).__name__}: {str(error)[:160]!r} after {refused:.1f}s; blocked log "
            f"events {[(e['event'], e.get('role')) for e in blocked]}; after the alarm a "
            f"publish took {after:.2f}s; duplicates {tally.duplicates}; the blocked publish "
            f"arrived later: {-1 in tally.seen}"
        )
        assert handled == total
        assert "memory" in alarm_during, "the alarm ended before the messages were handled"
        assert isinstance(error, PublishError), repr(error)
        assert "blocked" in str(error)


FORGED: dict[str, dict[str, Any]] = {
    "retry-count-2**62": {"x-retry-count": 2**62},
    "retry-count-text": {"x-retry-count": "7" * 300},
    "routing-key-int": {"x-original-routing-key": 12345},
    "routing-key-300": {"x-original-routing-key": "k" * 300},
    "exchange-table": {"x-original-exchange": {"name": "evil", "n": 1}},
    "x-death-garbage": {
        "x-death": [{"count": "many", "queue": 7}, {"reason": {"deep": [1, 2]}}, {}]
    },
}
FORGED["all-at-once"] = {k: v for headers in FORGED.values() for k, v in headers.items()}


class TestForgedHeaders:
    @pytest.mark.timeout(90)
    async def test_forged_burrowmq_headers_are_ignored(
        self, make_app, names, amqp, node: RabbitNode
    ) -> None:
        """Forged x-retry-count, x-original-* and x-death: attempts run 1..3 as for a fresh message, then exactly one DLQ copy without x-death."""
        exchange = names.exchange("forged")
        queue = names.queue("work")
        names.add_queue(f"{queue}.retry.2s")
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        traffic.watch(queue)
        attempts: dict[str, list[int]] = defaultdict(list)
        seen_exchanges: set[Any] = set()
        seen_keys: set[Any] = set()

        @router.direct(exchange, "forged", queue=queue, retry=Retry(attempts=3, wait=1.5))
        async def work(job: Job, message: Message) -> None:
            if Traffic.is_good(message):
                traffic.handled(queue, job.n)
                return
            attempts[message.message_id or "?"].append(message.attempt)
            seen_exchanges.add((type(message.exchange).__name__, repr(message.exchange)[:60]))
            seen_keys.add((type(message.routing_key).__name__, repr(message.routing_key)[:60]))
            raise RuntimeError("always fails")

        async with make_app(router, name="forged") as app, traffic.running(app):
            await traffic.advance(3)
            target = await amqp.get_exchange(exchange)
            for kind, headers in FORGED.items():
                await target.publish(
                    aio_pika.Message(
                        json_body(-1),
                        headers=headers,
                        message_id=f"forged-{kind}",
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="forged",
                    mandatory=True,
                )
            took = await wait_depth(amqp, f"{queue}.dlq", len(FORGED), 45)
            runs = sum(len(a) for a in attempts.values())
            await asyncio.sleep(3)  # room for a looping copy to come back (tier 2 s)
            runs_after = sum(len(a) for a in attempts.values())
            await traffic.advance(5)
        dead = await drain(amqp, f"{queue}.dlq")
        print(
            f"\n[forged headers] {len(FORGED)} forged messages in the DLQ after {took:.1f}s "
            f"({len(dead)} copies); attempts {dict(attempts)}; Message.exchange seen "
            f"{sorted(seen_exchanges)}, routing_key {sorted(seen_keys)}; runs {runs} then "
            f"{runs_after}; {traffic.summary()}"
        )
        assert dict(attempts) == {f"forged-{kind}": [1, 2, 3] for kind in FORGED}
        assert seen_exchanges == {("str", repr(exchange))}
        assert seen_keys == {("str", repr("forged"))}
        assert runs_after == runs, "the handler ran again after the DLQ had them all"
        assert sorted(m.message_id for m in dead) == sorted(f"forged-{k}" for k in FORGED)
        for message in dead:
            headers = message.headers
            assert "x-death" not in headers, f"{message.message_id}: {headers['x-death']!r}"
            assert headers["x-retry-count"] == 2
            assert headers["x-original-exchange"] == exchange
            assert headers["x-original-routing-key"] == "forged"
            assert headers["x-exception-type"] == "RuntimeError"
        assert await queue_depth(amqp, queue) == 0
        traffic.check()


class TestDeadLetterQueueDeleted:
    @pytest.mark.timeout(120)
    async def test_rejected_message_waits_on_the_broker_until_the_dlq_is_back(
        self, make_app, names, amqp
    ) -> None:
        """With its DLQ deleted, a rejected message is never acked into nothing: it returns with back-off (at most 10 runs in 10 s), an error is logged, and it lands in the DLQ once that is back."""
        queue = names.queue("work")
        dlq = f"{queue}.dlq"
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        traffic.watch(queue)
        runs: list[float] = []

        @router.consume(queue, queue_options={})
        async def work(job: Job, message: Message) -> None:
            if Traffic.is_good(message):
                traffic.handled(queue, job.n)
                return
            runs.append(time.monotonic())
            raise Reject("x")

        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name="dlq-deleted") as app, traffic.running(app):
                await traffic.advance(3)
                await amqp.queue_delete(dlq)
                began = time.monotonic()
                message_id = await app.publish("", Job(n=-1), routing_key=queue)
                await wait_for(lambda: bool(runs), 10, "the first run")
                await asyncio.sleep(max(0.0, began + 10 - time.monotonic()))  # the 10 s window
                in_window = len(runs)
                failures = events(logs, "dead_letter_failed")
                redeclared = await amqp.declare_queue(
                    dlq, durable=True, arguments={"x-queue-type": "quorum"}
                )
                await redeclared.bind(f"{queue}.dlx", "")
                landed = await wait_depth(amqp, dlq, 1, 60)
                await traffic.advance(5)
        dead = await drain(amqp, dlq)
        gaps = [round(b - a, 1) for a, b in itertools.pairwise(runs)]
        print(
            f"\n[dlq deleted] rejected message run {in_window} times in 10 s (gaps {gaps}); "
            f"dead_letter_failed errors {len(failures)} (levels "
            f"{sorted({e.get('log_level') for e in failures})}); in the DLQ {landed:.1f}s after "
            f"it was declared again: {[m.message_id for m in dead]}; runs in all {len(runs)}; "
            f"{traffic.summary()}"
        )
        assert 1 <= in_window <= 10
        assert failures and all(e.get("log_level") == "error" for e in failures)
        assert [m.message_id for m in dead] == [message_id]
        assert dead[0].headers["x-exception-type"] == "Reject"
        assert await queue_depth(amqp, queue) == 0
        traffic.check()


class TestDelayLadder:
    @pytest.mark.timeout(90)
    async def test_jittered_waits_use_the_shared_ladder_only(
        self, make_app, names, amqp, node: RabbitNode
    ) -> None:
        """20 always-failing messages with waits drawn from 2-40 s create no per-queue delay queue: they wait in the 28 fixed ladder levels, all in App.topology()."""
        queue = names.queue("work")
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        traffic.watch(queue)
        runs: Counter[str] = Counter()

        @router.consume(
            queue, queue_options={}, retry=Retry(attempts=20, wait=tenacity.wait_random(2, 40))
        )
        async def work(job: Job, message: Message) -> None:
            if Traffic.is_good(message):
                traffic.handled(queue, job.n)
                return
            runs[message.message_id or "?"] += 1
            raise RuntimeError("always fails")

        ladder = {level_name(k) for k in range(LEVELS)} | {OUTBOX, OUTBOX_DLQ}
        own = f"{queue}."  # any queue the route made for itself (its .dlq aside)
        observed: set[str] = set()
        async with make_app(router, name="delay-ladder") as app, traffic.running(app):
            planned = {q.name for q in app.topology().queues}
            await traffic.advance(3)
            for i in range(20):
                await app.publish("", Job(n=-i), routing_key=queue, message_id=f"slow-{i}")
            await wait_for(lambda: len(runs) >= 20, 20, "a first run of every message")
            for _ in range(4):
                listing = await asyncio.to_thread(node.ctl, "list_queues", "name")
                observed.update(
                    line.split("\t")[0]
                    for line in listing.splitlines()
                    if line.startswith((own, "burrowmq.delay."))
                )
                await asyncio.sleep(1)  # samples the broker over a few seconds
            await traffic.advance(5)
        print(
            f"\n[delay ladder] 20 messages, waits 2-40 s: queues seen "
            f"{sorted(observed - ladder)} besides the {len(ladder)} of the ladder; "
            f"first runs {len(runs)}, runs in all {sum(runs.values())}; {traffic.summary()}"
        )
        assert observed - ladder <= {f"{queue}.dlq"}, observed - ladder
        assert ladder <= planned
        traffic.check()


class TestRpcReplyTo:
    @pytest.mark.timeout(90)
    async def test_plain_queue_reply_to_is_obeyed_only_when_the_route_opts_in(
        self, make_app, names, amqp, node: RabbitNode
    ) -> None:
        """A request whose reply_to names another route's work queue is acked and dropped with a warning; with reply_queues=True it is answered there."""
        traffic = Traffic()
        router = Router()
        service(router, names, traffic)
        good_queue = traffic.queues[0]
        strict, lenient = service_name(), service_name()
        names.add_queue(f"rpc.{strict}")
        names.add_queue(f"rpc.{lenient}")
        replies = names.queue("replies")
        ran: list[tuple[str, int]] = []

        @router.rpc(f"{strict}.echo")
        async def strict_echo(job: Job) -> Job:
            ran.append((strict, job.n))
            return job

        @router.rpc(f"{lenient}.echo", reply_queues=True)
        async def lenient_echo(job: Job) -> Job:
            ran.append((lenient, job.n))
            return job

        await amqp.declare_queue(replies, durable=True, arguments={"x-queue-type": "classic"})
        rpc = "burrowmq.rpc"
        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name="reply-to") as app, traffic.running(app):
                await traffic.advance(3)
                exchange = await amqp.get_exchange(rpc)
                for procedure, reply_to, n in (
                    (f"{strict}.echo", good_queue, -777),
                    (f"{lenient}.echo", replies, -778),
                ):
                    await exchange.publish(
                        aio_pika.Message(
                            json_body(n),
                            content_type="application/json",
                            correlation_id=f"hostile{n}",
                            message_id=f"hostile{n}",
                            reply_to=reply_to,
                        ),
                        routing_key=procedure,
                        mandatory=True,
                    )
                reply = await asyncio.wait_for(_get_one(amqp, replies), 15)
                await wait_settled(node, f"rpc.{strict}", 15)
                await traffic.advance(10)  # a reply sent before that ack would be here now
        warnings = [
            e for e in logs if e.get("log_level") == "warning" and good_queue in values_text([e])
        ]
        print(
            f"\n[rpc reply_to] to a plain queue: strict procedure ran {ran.count((strict, -777))} "
            f"times, its reply reached {good_queue.rsplit('.', 1)[-1]}: "
            f"{-777 in traffic.tally.seen}; warnings {[e['event'] for e in warnings]}; with "
            f"reply_queues=True: reply {json.loads(reply.body)} (correlation id "
            f"{reply.correlation_id}); {traffic.summary()}"
        )
        assert -777 not in traffic.tally.seen, "the reply was written into another route's queue"
        assert warnings, "no warning names the refused reply_to"
        assert reply.correlation_id == "hostile-778"
        assert json.loads(reply.body) == {"n": -778}
        traffic.check()

    @pytest.mark.timeout(120)
    async def test_calls_succeed_while_a_client_sends_malformed_direct_reply_tos(
        self, make_app, names, amqp
    ) -> None:
        """1,000 concurrent calls all succeed while a hostile client sends 200 requests with malformed direct reply-to addresses; no connection is lost."""
        traffic = Traffic()
        router = Router()
        name = service(router, names, traffic)
        procedure = f"{name}.echo"
        real = await direct_reply_to_address(amqp)
        hostile = hostile_reply_tos(real, 200)
        with structlog.testing.capture_logs() as logs:
            server = make_app(router, name="rpc-server")
            client = make_app(name="rpc-client")
            await server.start()
            await client.start()
            async with traffic.running(server):
                await traffic.advance(3)
                exchange = await amqp.get_exchange("burrowmq.rpc")

                async def attack() -> None:
                    for i, reply_to in enumerate(hostile):
                        await exchange.publish(
                            aio_pika.Message(
                                json_body(-i),
                                content_type="application/json",
                                correlation_id=f"hostile-{i}",
                                reply_to=reply_to,
                            ),
                            routing_key=procedure,
                        )

                began = time.monotonic()
                outcomes = await asyncio.gather(
                    attack(),
                    *(client.call(procedure, Job(n=i), timeout=60) for i in range(1000)),
                    return_exceptions=True,
                )
                took = time.monotonic() - began
                await traffic.advance(5)
            connected = server.transport.is_connected and client.transport.is_connected
        replies = outcomes[1:]
        failed = Counter(type(o).__name__ for o in replies if isinstance(o, BaseException))
        wrong = [
            i for i, o in enumerate(replies) if not isinstance(o, BaseException) and o != {"n": i}
        ]
        lost = events(logs, "connection_lost")
        print(
            f"\n[rpc hostile reply-to] 1,000 calls beside 200 hostile requests "
            f"({len(set(hostile))} kinds) in {took:.1f}s: failed {dict(failed)}, wrong "
            f"{len(wrong)}; attack {outcomes[0]!r}; connections lost {len(lost)} "
            f"{[e.get('role') for e in lost]}; {traffic.summary()}"
        )
        assert outcomes[0] is None, repr(outcomes[0])
        assert not failed and not wrong
        assert not lost, f"connections lost: {lost[:3]}"
        assert connected
        traffic.check()

    @pytest.mark.timeout(60)
    async def test_call_to_a_stopped_service_raises_no_server_at_once(
        self, make_app, names, amqp
    ) -> None:
        """A service that ran once and stopped (its queue stays bound): a call raises NoServer, a NoRoute, in well under a second."""
        name = service_name()
        names.add_queue(f"rpc.{name}")
        router = Router()

        @router.rpc(f"{name}.echo")
        async def echo(job: Job) -> Job:
            return job

        server = make_app(router, name="stopped-server")
        await server.start()
        await server.stop()
        remaining = await amqp.declare_queue(f"rpc.{name}", passive=True)
        client = make_app(name="caller")
        await client.start()
        began = time.monotonic()
        with pytest.raises(NoServer) as info:
            await client.call(f"{name}.echo", Job(n=1), timeout=10)
        took = time.monotonic() - began
        print(
            f"\n[rpc no server] rpc.{name} kept with "
            f"{remaining.declaration_result.consumer_count} consumers: call raised "
            f"{type(info.value).__name__} after {took * 1000:.0f} ms: {info.value}"
        )
        assert isinstance(info.value, NoRoute)
        assert took < 1.0


async def _get_one(
    channel: aio_pika.abc.AbstractChannel, queue: str
) -> aio_pika.abc.AbstractIncomingMessage:
    """The first message that arrives in ``queue`` (taken without ack)."""
    source = await channel.declare_queue(queue, passive=True)
    while True:
        message = await source.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.05)


SECRET_TEXT = "could not connect to postgresql://app:s3cr3t@db:5432/x password=hunter2"
SECRETS = ("s3cr3t", "hunter2")


class TestRedaction:
    @pytest.mark.timeout(60)
    async def test_credentials_in_handler_errors_reach_no_log_header_or_caller(
        self, make_app, names, amqp
    ) -> None:
        """Credentials in a handler's exception text appear neither in the DLQ copy, nor in any log event, nor in the caller's RemoteError."""
        queue = names.queue("work")
        traffic = Traffic()
        router = Router()
        name = service(router, names, traffic)
        traffic.watch(queue)

        @router.consume(queue, queue_options={}, retry=Retry(attempts=2, wait=0.01))
        async def work(job: Job, message: Message) -> None:
            if Traffic.is_good(message):
                traffic.handled(queue, job.n)
                return
            raise RuntimeError(SECRET_TEXT)

        @router.rpc(f"{name}.leak")
        async def leak(job: Job) -> Job:
            raise RuntimeError(SECRET_TEXT)

        with structlog.testing.capture_logs() as logs:
            async with make_app(router, name="redaction") as app, traffic.running(app):
                await traffic.advance(3)
                await app.publish("", Job(n=-1), routing_key=queue, message_id="secret-1")
                await wait_depth(amqp, f"{queue}.dlq", 1, 20)
                with pytest.raises(RemoteError) as info:
                    await app.call(f"{name}.leak", Job(n=-2), timeout=10)
                await traffic.advance(3)
        dead = await drain(amqp, f"{queue}.dlq")
        error = info.value
        remote = "\n".join(
            str(part)
            for part in (error, error.remote_message, error.type, error.details, error.traceback)
        )
        logged = values_text(logs)
        header = str(dead[0].headers.get("x-exception-message")) if dead else ""
        print(
            f"\n[redaction] DLQ x-exception-message {header!r}; RemoteError {str(error)!r}; "
            f"{len(logs)} log events; secrets in logs "
            f"{[s for s in SECRETS if s in logged]}; {traffic.summary()}"
        )
        assert [m.message_id for m in dead] == ["secret-1"]
        for secret in SECRETS:
            assert secret not in header
            assert secret not in remote
            assert secret not in logged, [e for e in logs if secret in values_text([e])][:3]
        traffic.check()


class TestWireTypes:
    @pytest.mark.timeout(30)
    async def test_float_header_arrives_as_the_same_double(self, make_app, names, amqp) -> None:
        """A float header 0.1 sent by app.publish reaches a plain aio-pika consumer as exactly 0.1."""
        queue = names.queue("floats")
        await amqp.declare_queue(queue, durable=True, arguments={"x-queue-type": "classic"})
        async with make_app(name="floats") as app:
            await app.publish("", {"x": 1}, routing_key=queue, headers={"f": 0.1})
            small = await asyncio.wait_for(_get_one(amqp, queue), 10)
            big: Any = None
            with contextlib.suppress(BurrowError):  # a 32-bit float cannot hold it at all
                await app.publish("", {"x": 2}, routing_key=queue, headers={"g": 1e300})
                big = (await asyncio.wait_for(_get_one(amqp, queue), 10)).headers["g"]
        print(f"\n[floats] 0.1 arrived as {small.headers['f']!r}; 1e300 as {big!r}")
        assert small.headers["f"] == 0.1
        assert big == 1e300 and not math.isinf(big)

    @pytest.mark.timeout(30)
    async def test_caret_in_an_exchange_name_is_a_burrow_error(self, make_app, names) -> None:
        """An exchange named with '^' in a decorator route fails the start with a BurrowError, never a raw ValueError."""
        queue = names.queue("caret")
        router = Router()
        error: BaseException | None = None
        try:

            @router.direct("bad^name", "k", queue=queue)
            async def never(job: Job) -> None:  # pragma: no cover - never started
                raise AssertionError("not reached")

            await make_app(router, name="caret").start()
        except Exception as exc:
            error = exc
        print(f"\n[caret] {type(error).__name__}: {error}")
        assert isinstance(error, ConfigurationError | TopologyError), repr(error)
        assert not isinstance(error, ValueError)
