"""Contract: stream routes read from an offset, a named consumer resumes, failures to its dlq.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import datetime

import pytest
from pydantic import BaseModel

from burrowmq import ConfigurationError, Message, Reject, Retry, Router, Stream, Topology
from burrowmq.framework.transport import Properties
from burrowmq.routing.offsets import OFFSET_QUEUE_ARGUMENTS, offset_queue
from burrowmq.topology.model import partition_of
from tests.contract.conftest import Backend
from tests.contract.test_routing import Seen

pytestmark = pytest.mark.contract


class Event(BaseModel):
    n: int


def _consumer(backend: Backend, stream: str, name: str = "proj") -> str:
    """A unique consumer name whose dlq and offset queue are cleaned up."""
    consumer = f"{backend.names.prefix}.{name}"
    backend.names.add_queue(f"{consumer}.dlq")
    backend.names.add_queue(f"{stream}.{consumer}.offset")
    backend.names.add_queue(f"{stream}.{consumer}.lease")
    return consumer


async def _publish(backend: Backend, stream: str, numbers: range) -> None:
    app = backend.app(Router())
    await app.start()
    for n in numbers:
        await app.publish("", Event(n=n), routing_key=stream)
    await app.stop()


async def _declare(backend: Backend, stream: str) -> None:
    await backend.transport.declare_queue(stream, arguments={"x-queue-type": "stream"})


class TestOffsets:
    """A stream route starts where its offset says; each message carries its offset."""

    @pytest.mark.parametrize(
        ("offset", "expected"),
        [
            ("first", [0, 1, 2, 3, 4]),
            (3, [3, 4]),
            (datetime.timedelta(minutes=10), [0, 1, 2, 3, 4]),
        ],
    )
    async def test_start_offset(
        self, backend: Backend, offset: object, expected: list[int]
    ) -> None:
        """first, an int and a timedelta back from now start where they say."""
        stream = backend.names.queue("events")
        await _declare(backend, stream)
        await _publish(backend, stream, range(5))
        router, seen = Router(), Seen()

        @router.stream(stream, offset=offset)  # type: ignore[arg-type]
        async def project(event: Event, message: Message) -> None:
            seen.add((event.n, message.offset))

        await backend.app(router).start()
        got = await seen.wait(len(expected))
        assert [n for n, _ in got] == expected
        assert [o for _, o in got] == expected  # offsets count from 0 in a fresh stream

    async def test_next_sees_only_what_comes_after_the_start(self, backend: Backend) -> None:
        """offset="next" (the default) skips what the stream held before the start."""
        stream = backend.names.queue("events")
        router, seen = Router(), Seen()

        @router.stream(stream)
        async def project(event: Event, message: Message) -> None:
            seen.add(message.offset)

        await _declare(backend, stream)
        await _publish(backend, stream, range(3))
        app = backend.app(router)
        await app.start()
        for n in range(3, 5):
            await app.publish("", Event(n=n), routing_key=stream)
        assert await seen.wait(2) == [3, 4]

    async def test_stream_is_declared_with_retention(self, backend: Backend) -> None:
        """The route declares the stream with x-max-age and x-max-length-bytes."""
        stream = backend.names.queue("events")
        router = Router()

        @router.stream(stream, max_age=datetime.timedelta(days=7), max_length_bytes=10_000_000)
        async def project(event: Event) -> None: ...

        await backend.app(router).start()
        await backend.transport.declare_queue(
            stream,
            arguments={
                "x-queue-type": "stream",
                "x-max-age": "604800s",
                "x-max-length-bytes": 10_000_000,
            },
        )  # an equal redeclaration: accepted


class TestNamedConsumer:
    """A named consumer stores its offset on the broker and resumes just after it."""

    async def test_resumes_after_stop_with_nothing_skipped(self, backend: Backend) -> None:
        """Stopped after 10, restarted: it reads 10.. exactly, no repeat and no gap."""
        stream = backend.names.queue("events")
        consumer = _consumer(backend, stream)
        seen = Seen()

        def build() -> Router:
            router = Router()

            @router.stream(stream, consumer=consumer, offset="first", concurrency=4)
            async def project(event: Event, message: Message) -> None:
                seen.add(message.offset)

            return router

        first = backend.app(build())
        await first.start()
        for n in range(10):
            await first.publish("", Event(n=n), routing_key=stream)
        await seen.wait(10)
        await first.stop()
        await _publish(backend, stream, range(10, 15))
        assert seen.items[:10] and sorted(seen.items) == list(range(10))
        await backend.app(build()).start()
        got = await seen.wait(15)
        assert sorted(got[10:]) == list(range(10, 15))
        assert await backend.transport.message_count(f"{stream}.{consumer}.offset") == 1


class TestOneReader:
    """A named consumer reads on one instance at a time; another takes over when it stops."""

    async def test_the_second_instance_stands_by_then_resumes_after_the_mark(
        self, backend: Backend
    ) -> None:
        """Two instances: the first reads everything; stopped, the second reads on after its mark."""
        stream = backend.names.queue("events")
        consumer = _consumer(backend, stream)
        seen = Seen()

        def build(label: str) -> Router:
            router = Router()

            @router.stream(stream, consumer=consumer, offset="first", concurrency=4)
            async def project(event: Event, message: Message) -> None:
                seen.add((label, message.offset))

            return router

        first, second = backend.app(build("a")), backend.app(build("b"))
        await first.start()
        await second.start()
        for n in range(10):
            await first.publish("", Event(n=n), routing_key=stream)
        await seen.wait(10)
        assert await backend.transport.message_count(f"{stream}.{consumer}.lease") == 0
        await first.stop()  # stores its mark, then hands the lease on
        for n in range(10, 15):
            await second.publish("", Event(n=n), routing_key=stream)
        got = await seen.wait(15)
        assert sorted(offset for _, offset in got) == list(range(15))  # none twice, none skipped
        assert {label for label, _ in got[:10]} == {"a"}
        assert {label for label, _ in got[10:]} == {"b"}
        health = second.health()
        assert health.ready, health.problems


class TestFailures:
    """A stream cannot dead-letter: failures go to <consumer>.dlq, and reading goes on."""

    async def test_failure_after_retries_goes_to_consumer_dlq(self, backend: Backend) -> None:
        """Two attempts, then <consumer>.dlq with the x-exception-* headers; later ones flow."""
        stream = backend.names.queue("events")
        consumer = _consumer(backend, stream)
        router, seen, attempts = Router(), Seen(), Seen()

        @router.stream(stream, consumer=consumer, offset="first", retry=Retry(attempts=2, wait=0))
        async def project(event: Event, message: Message) -> None:
            if event.n == 1:
                attempts.add(message.attempt)
                raise ValueError("cannot project 1")
            seen.add(event.n)

        await _declare(backend, stream)
        await _publish(backend, stream, range(3))
        await backend.app(router).start()
        assert await seen.wait(2) == [0, 2]
        [dead] = await backend.take(f"{consumer}.dlq", 1)
        headers = dead.properties.headers
        assert attempts.items == [1, 2]
        assert headers["x-exception-type"] == "ValueError"
        assert headers["x-exception-message"] == "cannot project 1"
        assert headers["x-original-queue"] == stream
        assert headers["x-original-routing-key"] == stream
        assert headers["x-retry-count"] == 1

    async def test_poison_and_reject_go_to_dlq(self, backend: Backend) -> None:
        """A payload that does not validate, and a Reject, go to the dlq at once."""
        stream = backend.names.queue("events")
        backend.names.add_queue(f"{stream}.dlq")
        router, seen = Router(), Seen()

        @router.stream(stream, offset="first")
        async def project(event: Event) -> None:
            if event.n == 2:
                raise Reject("two is refused")
            seen.add(event.n)

        await _declare(backend, stream)
        app = backend.app(router)
        await app.start()
        await app.publish("", b"not json", routing_key=stream)
        await app.publish("", Event(n=2), routing_key=stream)
        await app.publish("", Event(n=3), routing_key=stream)
        assert await seen.wait(1) == [3]
        dead = await backend.take(f"{stream}.dlq", 2)
        types = [d.properties.headers["x-exception-type"] for d in dead]
        assert types == ["DecodeError", "Reject"]


class TestStoredMarkHygiene:
    """A mark the consumer cannot trust is ignored: it starts at offset=, skipping nothing."""

    @pytest.mark.parametrize(
        "body", [b"not json", b'{"offset": -1}', b'{"offset": "2"}', b'{"offset": 1000000}']
    )
    async def test_forged_mark_starts_at_offset(self, backend: Backend, body: bytes) -> None:
        """Not JSON, negative, not an int, past the end: every message from the first comes."""
        stream = backend.names.queue("events")
        consumer = _consumer(backend, stream)
        await _declare(backend, stream)
        await _publish(backend, stream, range(5))
        queue = offset_queue(stream, consumer)
        await backend.transport.declare_queue(queue, arguments=OFFSET_QUEUE_ARGUMENTS)
        await backend.transport.publish("", queue, body, Properties(), mandatory=True)
        seen = Seen()
        router = Router()

        @router.stream(stream, consumer=consumer, offset="first")
        async def project(event: Event, message: Message) -> None:
            seen.add(message.offset)

        await backend.app(router).start()
        assert sorted(await seen.wait(5)) == [0, 1, 2, 3, 4]


class TestSuperStream:
    """A Stream with partitions is RabbitMQ's super stream; partition_key picks a partition."""

    async def test_partition_key_routes_to_the_hashed_partition(self, backend: Backend) -> None:
        """Each key lands in partition murmur3(key) % N, and only there."""
        orders = backend.names.exchange("orders")
        partitions = [backend.names.add_queue(f"{orders}-{i}") for i in range(3)]
        topology = Topology()
        topology.add(Stream(orders, partitions=3))
        router, seen = Router(), Seen()
        for index, partition in enumerate(partitions):

            @router.stream(partition, offset="first")
            async def project(body: dict[str, str], index: int = index) -> None:
                seen.add((index, body["key"]))

        app = backend.app(router, topology=topology)
        await app.start()
        keys = [f"customer-{n}" for n in range(12)]
        for key in keys:
            await app.publish(orders, {"key": key}, partition_key=key, mandatory=True)
        got = await seen.wait(len(keys))
        assert sorted(got) == sorted((partition_of(key, 3), key) for key in keys)
        assert len({index for index, _ in got}) > 1  # the keys spread

    async def test_partition_key_needs_a_super_stream(self, backend: Backend) -> None:
        """partition_key to a plain exchange, or with routing_key, is a ConfigurationError."""
        orders = backend.names.exchange("orders")
        for i in range(2):
            backend.names.add_queue(f"{orders}-{i}")
        topology = Topology()
        topology.add(Stream(orders, partitions=2))
        app = backend.app(Router(), topology=topology)
        await app.start()
        with pytest.raises(ConfigurationError, match=r"'amq\.direct' is not a partitioned stream"):
            await app.publish("amq.direct", {"n": 1}, partition_key="k")
        with pytest.raises(ConfigurationError, match=r"routing_key= or partition_key="):
            await app.publish(orders, {"n": 1}, routing_key="0", partition_key="k")


class TestConsumerGroup:
    """Instances of one partitioned consumer split the partitions; each read by one."""

    async def test_single_active_consumer_queue_counts_one(self, backend: Backend) -> None:
        """A single-active-consumer queue reports its active consumer only (so groups
        count their members elsewhere)."""
        queue = backend.names.queue("lease")
        await backend.transport.declare_queue(
            queue, arguments={"x-queue-type": "quorum", "x-single-active-consumer": True}
        )
        subscriptions = [
            await backend.transport.consume(queue, lambda delivery: None, prefetch=1)
            for _ in range(3)
        ]
        try:
            assert await backend.transport.consumer_count(queue) == 1
        finally:
            for subscription in subscriptions:
                await subscription.close()

    async def test_two_instances_split_the_partitions(self, backend: Backend) -> None:
        """Two instances on 4 partitions both read, and every message is read once."""
        orders, consumer = backend.names.exchange("orders"), f"{backend.names.prefix}.billing"
        backend.names.add_queue(f"{consumer}.dlq")
        backend.names.add_queue(f"{orders}.{consumer}.members")
        for i in range(4):
            for suffix in ("", f".{consumer}.offset", f".{consumer}.lease"):
                backend.names.add_queue(f"{orders}-{i}{suffix}")
        seen = Seen()

        def build(label: str) -> Router:
            router = Router()

            @router.stream(orders, consumer=consumer, partitions=4, offset="first")
            async def bill(body: dict[str, int], message: Message) -> None:
                seen.add((label, message.routing_key, body["n"]))

            return router

        first, second = backend.app(build("a")), backend.app(build("b"))
        await first.start()
        await second.start()
        shares: dict[str, set[str]] = {}
        n = 0
        for _ in range(100):  # rounds of 16 until a round shows the 2/2 split
            for _ in range(16):
                await first.publish(orders, {"n": n}, partition_key=f"key-{n}")
                n += 1
            await seen.wait(n, timeout=20)
            shares = {}
            for label, partition, _ in seen.items[-16:]:
                shares.setdefault(label, set()).add(partition)
            if len(shares) == 2 and all(len(s) == 2 for s in shares.values()):
                break
            await asyncio.sleep(0.1)  # the instances balance every second
        got = seen.items
        assert sorted(n for _, _, n in got) == list(range(len(got)))  # none twice
        assert len(shares) == 2 and all(len(s) == 2 for s in shares.values()), shares
        assert shares["a"].isdisjoint(shares["b"])
