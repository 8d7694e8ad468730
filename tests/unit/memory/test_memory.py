"""The in-memory transport: declarations, routing, settling, TTL, limits and dead letters."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from burrowmq.exceptions import (
    ConfigurationError,
    ConnectionLost,
    PublishError,
    PublishNacked,
    TopologyError,
    Unroutable,
)
from burrowmq.framework.transport import Delivery, Properties
from burrowmq.memory.transport import MemoryBroker, MemoryTransport

pytestmark = pytest.mark.unit


class Inbox:
    """Deliveries of one consumer, awaited one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()

    def __call__(self, delivery: Delivery) -> None:
        self.queue.put_nowait(delivery)

    async def get(self) -> Delivery:
        return await asyncio.wait_for(self.queue.get(), 2)

    def pending(self) -> int:
        return self.queue.qsize()


async def settle() -> None:
    """Let scheduled deliveries run (a few loop iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def transport() -> AsyncIterator[MemoryTransport]:
    """A connected transport on a broker of its own."""
    t = MemoryTransport(url=f"memory://unit-{uuid.uuid4().hex}")
    await t.connect()
    yield t
    await t.close()


def props(**headers: Any) -> Properties:
    return Properties(headers=headers)


class TestConnection:
    """Connecting, sharing a named broker and closing."""

    async def test_same_url_shares_a_broker(self) -> None:
        """Two transports on the same memory:// URL see the same queues."""
        url = f"memory://share-{uuid.uuid4().hex}"
        a, b = MemoryTransport.shared(url), MemoryTransport.shared(url)
        await a.connect()
        await b.connect()
        await a.declare_queue("shared")
        assert await b.declare_queue("shared", passive=True) == "shared"
        assert a.broker is b.broker
        await a.close()
        await b.close()

    async def test_broker_is_forgotten_after_last_close(self) -> None:
        """Once the last connection closes, the next one starts with an empty broker."""
        url = f"memory://fresh-{uuid.uuid4().hex}"
        a = MemoryTransport.shared(url)
        await a.connect()
        await a.declare_queue("gone")
        await a.close()
        b = MemoryTransport.shared(url)
        await b.connect()
        with pytest.raises(TopologyError):
            await b.declare_queue("gone", passive=True)
        await b.close()

    async def test_ready_callbacks_run_on_connect(self) -> None:
        """Ready callbacks run in order on connect and again on reconnect."""
        t = MemoryTransport(MemoryBroker())
        calls: list[int] = []

        async def first() -> None:
            calls.append(1)

        async def second() -> None:
            calls.append(2)

        t.on_ready(first)
        t.on_ready(second)
        await t.connect()
        await t.reconnect()
        assert calls == [1, 2, 1, 2]
        assert t.is_connected
        await t.close()
        assert not t.is_connected

    async def test_publish_after_close_is_connection_lost(self) -> None:
        """Publishing on a closed transport raises ConnectionLost."""
        t = MemoryTransport(MemoryBroker())
        await t.connect()
        await t.close()
        with pytest.raises(ConnectionLost):
            await t.publish("", "q", b"x", Properties())
        with pytest.raises(ConnectionLost):
            await t.wait_connected(0.01)


class TestDeclarations:
    """Declarations are checked as RabbitMQ checks them."""

    async def test_redeclare_with_other_argument_names_it(self, transport: MemoryTransport) -> None:
        """Redeclaring a queue with another x-message-ttl raises naming the argument."""
        await transport.declare_queue("q", arguments={"x-message-ttl": 1000})
        with pytest.raises(TopologyError) as info:
            await transport.declare_queue("q", arguments={"x-message-ttl": 2000})
        assert info.value.argument == "x-message-ttl"
        assert info.value.entity == "queue 'q'"

    async def test_missing_compared_argument_is_a_difference(
        self, transport: MemoryTransport
    ) -> None:
        """Leaving out a compared argument on redeclare is a difference, as on RabbitMQ."""
        await transport.declare_queue("q", arguments={"x-dead-letter-exchange": "dlx"})
        with pytest.raises(TopologyError) as info:
            await transport.declare_queue("q")
        assert info.value.argument == "x-dead-letter-exchange"

    async def test_unknown_arguments_and_classic_type_are_ignored(
        self, transport: MemoryTransport
    ) -> None:
        """Uncompared arguments and an explicit classic type do not make a difference."""
        await transport.declare_queue("q", arguments={"x-foo": 1})
        await transport.declare_queue("q", arguments={"x-queue-type": "classic", "x-foo": 2})

    async def test_durable_mismatch(self, transport: MemoryTransport) -> None:
        """Redeclaring with another durability names 'durable'."""
        await transport.declare_queue("q")
        with pytest.raises(TopologyError) as info:
            await transport.declare_queue("q", durable=False)
        assert info.value.argument == "durable"

    async def test_exchange_type_and_alternate_mismatch(self, transport: MemoryTransport) -> None:
        """Redeclaring an exchange with another type or alternate exchange is refused."""
        await transport.declare_exchange("x", "direct", arguments={"alternate-exchange": "a"})
        with pytest.raises(TopologyError) as info:
            await transport.declare_exchange("x", "fanout", arguments={"alternate-exchange": "a"})
        assert info.value.argument == "type"
        with pytest.raises(TopologyError) as info:
            await transport.declare_exchange("x", "direct")
        assert info.value.argument == "alternate-exchange"

    async def test_passive_declarations_of_missing_entities(
        self, transport: MemoryTransport
    ) -> None:
        """Passive declarations of a missing queue or exchange raise TopologyError."""
        with pytest.raises(TopologyError):
            await transport.declare_queue("nope", passive=True)
        with pytest.raises(TopologyError):
            await transport.declare_exchange("nope", "direct", passive=True)

    async def test_quorum_queue_must_be_durable(self, transport: MemoryTransport) -> None:
        """A non-durable quorum queue is refused."""
        with pytest.raises(TopologyError) as info:
            await transport.declare_queue("q", durable=False, arguments={"x-queue-type": "quorum"})
        assert info.value.argument == "non-durable"

    async def test_reserved_and_generated_names(self, transport: MemoryTransport) -> None:
        """amq.* queue names are refused and an empty name gets a generated one."""
        with pytest.raises(TopologyError):
            await transport.declare_queue("amq.mine")
        name = await transport.declare_queue("", exclusive=True, durable=False)
        assert name.startswith("amq.gen-")

    async def test_bindings_need_both_ends(self, transport: MemoryTransport) -> None:
        """Binding to a missing exchange or queue, or to the default exchange, is refused."""
        await transport.declare_queue("q")
        await transport.declare_exchange("x", "headers")
        with pytest.raises(TopologyError):
            await transport.bind_queue("q", "missing")
        with pytest.raises(TopologyError):
            await transport.bind_queue("missing", "x")
        with pytest.raises(TopologyError):
            await transport.bind_queue("q", "")
        with pytest.raises(TopologyError) as info:
            await transport.bind_queue("q", "x", arguments={"x-match": "bogus"})
        assert info.value.argument == "x-match"

    async def test_exclusive_queue_belongs_to_its_connection(
        self, transport: MemoryTransport
    ) -> None:
        """Another connection can neither declare nor consume an exclusive queue."""
        await transport.declare_queue("mine", exclusive=True, durable=False)
        other = MemoryTransport(transport.broker)
        await other.connect()
        with pytest.raises(TopologyError):
            await other.declare_queue("mine", exclusive=True, durable=False)
        with pytest.raises(TopologyError):
            await other.consume("mine", Inbox(), prefetch=1)
        await other.close()

    async def test_exclusive_queue_goes_with_its_connection(self) -> None:
        """Closing a connection deletes its exclusive queues."""
        broker = MemoryBroker()
        keeper, owner = MemoryTransport(broker), MemoryTransport(broker)
        await keeper.connect()
        await owner.connect()
        await owner.declare_queue("mine", exclusive=True, durable=False)
        await owner.close()
        assert "mine" not in broker.queues
        await keeper.close()


class TestRouting:
    """Publishing routes through matching, with the default exchange and mandatory."""

    async def test_default_exchange_routes_by_queue_name(self, transport: MemoryTransport) -> None:
        """The default exchange delivers to the queue named by the routing key."""
        await transport.declare_queue("q")
        await transport.publish("", "q", b"x", Properties())
        assert [m.body for m in transport.broker.messages("q")] == [b"x"]

    async def test_mandatory_unroutable(self, transport: MemoryTransport) -> None:
        """A mandatory publish that reaches no queue raises Unroutable."""
        await transport.declare_exchange("x", "direct")
        with pytest.raises(Unroutable) as info:
            await transport.publish("x", "k", b"x", Properties(), mandatory=True)
        assert info.value.routing_key == "k"
        await transport.publish("x", "k", b"x", Properties())  # not mandatory: dropped

    async def test_exchange_to_exchange_and_alternate(self, transport: MemoryTransport) -> None:
        """Messages follow e2e bindings and fall back to the alternate exchange."""
        await transport.declare_exchange("ae", "fanout")
        await transport.declare_exchange("front", "topic", arguments={"alternate-exchange": "ae"})
        await transport.declare_exchange("inner", "direct")
        for q in ("matched", "other"):
            await transport.declare_queue(q)
        await transport.bind_exchange("inner", "front", "a.*")
        await transport.bind_queue("matched", "inner", "a.b")
        await transport.bind_queue("other", "ae")
        await transport.publish("front", "a.b", b"1", Properties())
        await transport.publish("front", "z", b"2", Properties())
        assert [m.body for m in transport.broker.messages("matched")] == [b"1"]
        assert [m.body for m in transport.broker.messages("other")] == [b"2"]

    async def test_headers_exchange(self, transport: MemoryTransport) -> None:
        """A headers binding matches on header values, as matching.headers_match says: by typed value, as RabbitMQ 4 does (1.0 is not 1)."""
        await transport.declare_exchange("h", "headers")
        await transport.declare_queue("q")
        await transport.bind_queue("q", "h", arguments={"x-match": "any", "a": 1, "b": "x"})
        await transport.publish("h", "", b"yes", props(a=1))
        await transport.publish("h", "", b"also", props(b="x"))
        await transport.publish("h", "", b"no", props(a=1.0))
        await transport.publish("h", "", b"nor", props(a=2))
        assert [m.body for m in transport.broker.messages("q")] == [b"yes", b"also"]

    async def test_missing_and_internal_exchanges(self, transport: MemoryTransport) -> None:
        """Publishing to a missing or internal exchange raises PublishError."""
        await transport.declare_exchange("in", "fanout", internal=True)
        with pytest.raises(PublishError):
            await transport.publish("missing", "", b"x", Properties())
        with pytest.raises(PublishError):
            await transport.publish("in", "", b"x", Properties())

    async def test_headers_as_the_wire_carries_them(self, transport: MemoryTransport) -> None:
        """Floats travel as 64-bit doubles (exactly), timestamps in whole seconds, and tuples are refused with PublishError naming the header."""
        await transport.declare_queue("q")
        stamp = datetime.datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=datetime.UTC)
        await transport.publish("", "q", b"x", props(f=1.1, t=stamp))
        headers = transport.broker.messages("q")[0].properties.headers
        assert headers["f"] == 1.1
        assert headers["t"] == stamp.replace(microsecond=0)
        with pytest.raises(PublishError, match=r"header 'bad' holds a tuple"):
            await transport.publish("", "q", b"x", props(bad=(1, 2)))

    async def test_publish_listener(self, transport: MemoryTransport) -> None:
        """Listeners see every publish with the queues it reached."""
        seen: list[frozenset[str]] = []
        await transport.declare_queue("q")
        transport.broker.add_listener(lambda r: seen.append(r.queues))
        await transport.publish("", "q", b"x", Properties())
        await transport.publish("", "nowhere", b"x", Properties())
        assert seen == [frozenset({"q"}), frozenset()]


class TestConsuming:
    """Deliveries, prefetch, ack, nack and requeue."""

    async def test_delivery_is_asynchronous(self, transport: MemoryTransport) -> None:
        """The callback never runs inside publish; it runs on a later loop iteration."""
        await transport.declare_queue("q")
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        await transport.publish("", "q", b"x", Properties())
        assert inbox.pending() == 0
        delivery = await inbox.get()
        assert delivery.body == b"x"
        assert delivery.routing_key == "q"

    async def test_prefetch_limits_unacked(self, transport: MemoryTransport) -> None:
        """A consumer holds at most prefetch unacked deliveries."""
        await transport.declare_queue("q")
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=2)
        for i in range(5):
            await transport.publish("", "q", str(i).encode(), Properties())
        await settle()
        assert inbox.pending() == 2
        first = await inbox.get()
        await first.ack()
        await settle()
        assert inbox.pending() == 2

    async def test_requeue_sets_redelivered_and_keeps_order(
        self, transport: MemoryTransport
    ) -> None:
        """A requeued message comes back first, marked redelivered."""
        await transport.declare_queue("q")
        for body in (b"1", b"2"):
            await transport.publish("", "q", body, Properties())
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        first = await inbox.get()
        assert not first.redelivered
        assert await first.nack(requeue=True)
        again = await inbox.get()
        assert (again.body, again.redelivered) == (b"1", True)

    async def test_close_requeues_and_settling_after_returns_false(
        self, transport: MemoryTransport
    ) -> None:
        """Closing a subscription requeues its unacked deliveries; acking them is False."""
        await transport.declare_queue("q")
        await transport.publish("", "q", b"x", Properties())
        inbox = Inbox()
        sub = await transport.consume("q", inbox, prefetch=1)
        delivery = await inbox.get()
        await sub.close()
        assert not await delivery.ack()
        assert [(m.body, m.redelivered) for m in transport.broker.messages("q")] == [(b"x", True)]

    async def test_cancel_keeps_unacked_with_caller(self, transport: MemoryTransport) -> None:
        """After cancel no new deliveries arrive, but held ones can still be acked."""
        await transport.declare_queue("q")
        await transport.publish("", "q", b"1", Properties())
        inbox = Inbox()
        sub = await transport.consume("q", inbox, prefetch=1)
        held = await inbox.get()
        await sub.cancel()
        await transport.publish("", "q", b"2", Properties())
        await settle()
        assert inbox.pending() == 0
        assert await held.ack()
        await sub.close()
        assert [m.body for m in transport.broker.messages("q")] == [b"2"]

    async def test_double_ack_closes_the_channel(self, transport: MemoryTransport) -> None:
        """Acking twice closes the channel, as RabbitMQ does, and is recorded."""
        await transport.declare_queue("q")
        await transport.publish("", "q", b"x", Properties())
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        delivery = await inbox.get()
        assert await delivery.ack()
        assert await delivery.ack()
        assert "unknown delivery tag" in transport.broker.channel_errors[0]
        assert not await delivery.ack()

    async def test_round_robin_between_consumers(self, transport: MemoryTransport) -> None:
        """Two consumers of one queue share its messages in turn."""
        await transport.declare_queue("q")
        a, b = Inbox(), Inbox()
        await transport.consume("q", a, prefetch=10)
        await transport.consume("q", b, prefetch=10)
        for i in range(4):
            await transport.publish("", "q", str(i).encode(), Properties())
        await settle()
        assert (a.pending(), b.pending()) == (2, 2)

    async def test_exclusive_consumer(self, transport: MemoryTransport) -> None:
        """An exclusive consumer refuses company, and is refused on a consumed queue."""
        await transport.declare_queue("q")
        await transport.consume("q", Inbox(), prefetch=1, exclusive=True)
        with pytest.raises(TopologyError):
            await transport.consume("q", Inbox(), prefetch=1)

    async def test_consume_missing_queue(self, transport: MemoryTransport) -> None:
        """Consuming a queue that does not exist raises TopologyError."""
        with pytest.raises(TopologyError):
            await transport.consume("missing", Inbox(), prefetch=1)

    async def test_reconnect_redelivers_unacked(self, transport: MemoryTransport) -> None:
        """After a reconnect, what was unacked arrives again, marked redelivered."""
        await transport.declare_queue("q")
        await transport.publish("", "q", b"x", Properties())
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        first = await inbox.get()
        await transport.reconnect()
        assert not await first.ack()
        again = await inbox.get()
        assert again.redelivered

    async def test_auto_delete_queue_goes_with_last_consumer(
        self, transport: MemoryTransport
    ) -> None:
        """An auto-delete queue is deleted when its last consumer is cancelled."""
        await transport.declare_queue("q", auto_delete=True, durable=False)
        sub = await transport.consume("q", Inbox(), prefetch=1)
        await sub.cancel()
        assert "q" not in transport.broker.queues

    async def test_quorum_delivery_count(self, transport: MemoryTransport) -> None:
        """Quorum queues carry x-delivery-count, starting at 0."""
        await transport.declare_queue("q", arguments={"x-queue-type": "quorum"})
        await transport.publish("", "q", b"x", Properties())
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        first = await inbox.get()
        assert first.properties.headers["x-delivery-count"] == 0
        await first.nack(requeue=True)
        assert (await inbox.get()).properties.headers["x-delivery-count"] == 1


async def dead_letter_setup(t: MemoryTransport, **arguments: Any) -> None:
    await t.declare_exchange("dlx", "fanout")
    await t.declare_queue("dlq")
    await t.bind_queue("dlq", "dlx")
    await t.declare_queue("q", arguments={"x-dead-letter-exchange": "dlx", **arguments})


class TestDeadLetters:
    """Rejection, expiry and overflow dead-letter with x-death, as RabbitMQ does."""

    async def test_reject_dead_letters_with_x_death(self, transport: MemoryTransport) -> None:
        """A nack without requeue moves the message to the DLX with x-death and first-death."""
        await dead_letter_setup(transport)
        await transport.publish("", "q", b"x", Properties(expiration="60000"))
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        await (await inbox.get()).nack(requeue=False)
        [dead] = transport.broker.messages("dlq")
        headers = dead.properties.headers
        death = headers["x-death"][0]
        assert (death["reason"], death["queue"], death["count"]) == ("rejected", "q", 1)
        assert death["routing-keys"] == ["q"]
        assert death["original-expiration"] == "60000"
        assert headers["x-first-death-reason"] == "rejected"
        assert dead.properties.expiration is None
        assert (dead.exchange, dead.routing_key) == ("dlx", "q")

    async def test_queue_ttl_expires_without_consumers(self, transport: MemoryTransport) -> None:
        """x-message-ttl dead-letters with reason expired, even with nobody consuming."""
        await dead_letter_setup(transport, **{"x-message-ttl": 5})
        inbox = Inbox()
        await transport.consume("dlq", inbox, prefetch=1)
        await transport.publish("", "q", b"x", Properties())
        dead = await inbox.get()
        assert dead.properties.headers["x-death"][0]["reason"] == "expired"

    async def test_per_message_ttl_and_routing_key(self, transport: MemoryTransport) -> None:
        """A per-message expiration expires it, and x-dead-letter-routing-key replaces the key."""
        await transport.declare_exchange("dlx", "direct")
        await transport.declare_queue("dlq")
        await transport.bind_queue("dlq", "dlx", "dead")
        await transport.declare_queue(
            "q", arguments={"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "dead"}
        )
        inbox = Inbox()
        await transport.consume("dlq", inbox, prefetch=1)
        await transport.publish("", "q", b"x", Properties(expiration="1"))
        dead = await inbox.get()
        assert dead.routing_key == "dead"

    async def test_zero_ttl_reaches_a_ready_consumer(self, transport: MemoryTransport) -> None:
        """A message with TTL 0 still reaches a consumer that is ready for it."""
        await transport.declare_queue("q")
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        await transport.publish("", "q", b"x", Properties(expiration="0"))
        assert (await inbox.get()).body == b"x"

    async def test_bad_expiration_is_refused(self, transport: MemoryTransport) -> None:
        """An expiration that is not milliseconds is refused like the broker does."""
        with pytest.raises(PublishError):
            await transport.publish("", "q", b"x", Properties(expiration="soon"))

    async def test_max_length_drops_head_to_dlx(self, transport: MemoryTransport) -> None:
        """Overflowing x-max-length dead-letters the oldest message with reason maxlen."""
        await dead_letter_setup(transport, **{"x-max-length": 1})
        for body in (b"1", b"2"):
            await transport.publish("", "q", body, Properties())
        assert [m.body for m in transport.broker.messages("q")] == [b"2"]
        [dead] = transport.broker.messages("dlq")
        assert (dead.body, dead.properties.headers["x-death"][0]["reason"]) == (b"1", "maxlen")

    async def test_reject_publish_nacks(self, transport: MemoryTransport) -> None:
        """x-overflow reject-publish turns the publish into a nack."""
        await transport.declare_queue(
            "q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        await transport.publish("", "q", b"1", Properties())
        with pytest.raises(PublishNacked):
            await transport.publish("", "q", b"2", Properties())

    async def test_repeated_deaths_count_up(self, transport: MemoryTransport) -> None:
        """Dead-lettering from the same queue for the same reason increments the count."""
        await transport.declare_exchange("dlx", "direct")
        await transport.declare_queue("q", arguments={"x-dead-letter-exchange": "dlx"})
        await transport.bind_queue("q", "dlx", "q")
        await transport.publish("", "q", b"x", Properties())
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        await (await inbox.get()).nack(requeue=False)
        again = await inbox.get()
        [death] = again.properties.headers["x-death"]
        assert death["count"] == 1
        await again.nack(requeue=False)
        [death] = (await inbox.get()).properties.headers["x-death"]
        assert death["count"] == 2

    async def test_expiry_cycle_is_dropped(self, transport: MemoryTransport) -> None:
        """A message expiring back into the queue it expired from is dropped, as RabbitMQ does."""
        await transport.declare_queue(
            "q",
            arguments={
                "x-message-ttl": 1,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": "q",
            },
        )
        await transport.publish("", "q", b"x", Properties())
        await asyncio.sleep(0.05)
        assert transport.broker.messages("q") == []

    async def test_delivery_limit(self, transport: MemoryTransport) -> None:
        """A quorum queue dead-letters a message requeued more often than x-delivery-limit."""
        await dead_letter_setup(transport, **{"x-queue-type": "quorum", "x-delivery-limit": 1})
        await transport.publish("", "q", b"x", Properties())
        inbox = Inbox()
        await transport.consume("q", inbox, prefetch=1)
        await (await inbox.get()).nack(requeue=True)
        await (await inbox.get()).nack(requeue=True)
        [dead] = transport.broker.messages("dlq")
        assert dead.properties.headers["x-death"][0]["reason"] == "delivery_limit"


class TestRabbitmqVersion:
    """``memory://NAME?rabbitmq=VERSION``: headers matching of 4.x by default, 3.x on request."""

    STAMP = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)

    async def routed(self, url: str) -> list[bytes]:
        """Publish 1.0 and a timestamp to bindings of 1 and of its milliseconds; say what arrived."""
        t = MemoryTransport(url=url)
        await t.connect()
        try:
            await t.declare_exchange("h", "headers")
            await t.declare_queue("q")
            await t.bind_queue("q", "h", arguments={"x-match": "any", "n": 1})
            await t.bind_queue("q", "h", arguments={"t": int(self.STAMP.timestamp()) * 1000})
            await t.publish("h", "", b"float", props(n=1.0))
            await t.publish("h", "", b"stamp", props(t=self.STAMP))
            return [m.body for m in t.broker.messages("q")]
        finally:
            await t.close()

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("", [b"stamp"]),
            ("?rabbitmq=4.0", [b"stamp"]),
            ("?rabbitmq=4.0.5", [b"stamp"]),
            ("?rabbitmq=3.13", [b"stamp"]),
            ("?rabbitmq=3.10", [b"float"]),
            ("?rabbitmq=3.12.14", [b"float"]),
            ("/?rabbitmq=3.10", [b"float"]),
        ],
    )
    async def test_routing_follows_the_version(self, query: str, expected: list[bytes]) -> None:
        """1.0 matches a binding of 1 on 3.x only; a timestamp header is in ms on 4.x only."""
        assert await self.routed(f"memory://rules-{uuid.uuid4().hex}{query}") == expected

    @pytest.mark.parametrize(
        ("query", "rules"),
        [("", "RABBITMQ_4"), ("?rabbitmq=4.0", "RABBITMQ_4"), ("?rabbitmq=3.10", "RABBITMQ_3")],
    )
    async def test_broker_rules(self, query: str, rules: str) -> None:
        """The shared broker carries the rules its URL asked for."""
        t = MemoryTransport.shared(f"memory://rules-{uuid.uuid4().hex}{query}")
        await t.connect()
        assert t.broker.rules.name == rules
        assert t.broker.graph().rules is t.broker.rules
        assert t.description.startswith("memory://rules-")
        assert "?" not in t.description
        await t.close()

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("?rabbitmq=", r"rabbitmq='': .*not a RabbitMQ version"),
            ("?rabbitmq", r"rabbitmq='': .*not a RabbitMQ version"),
            ("?rabbitmq=banana", r"rabbitmq='banana': .*not a RabbitMQ version"),
            ("?rabbitmq=3", r"rabbitmq='3': .*ambiguous"),
            ("?rabbitmq=3.9", r"rabbitmq='3.9': .*older than 3.10"),
            ("?rabbitmq=3.10&rabbitmq=4.0", "parameter rabbitmq twice"),
            ("?version=3.10", "unknown parameter 'version'.*rabbitmq=VERSION"),
            ("?rabbitmq=3.10&x=1", "unknown parameter 'x'"),
        ],
    )
    def test_bad_parameter_is_a_configuration_error(self, query: str, message: str) -> None:
        """A bad ?rabbitmq= or another parameter is refused when the transport is made."""
        url = f"memory://bad-{uuid.uuid4().hex}{query}"
        with pytest.raises(ConfigurationError, match=message):
            MemoryTransport(url=url)
        with pytest.raises(ConfigurationError, match=message):
            MemoryBroker.named(url)

    async def test_one_name_is_one_broker_of_one_version(self) -> None:
        """A second URL naming an open broker must ask for its rules, else ConfigurationError."""
        name = f"memory://one-{uuid.uuid4().hex}"
        old = MemoryTransport.shared(f"{name}?rabbitmq=3.10")
        await old.connect()
        same = MemoryTransport.shared(f"{name}?rabbitmq=3.12")  # the same 3.x rules
        await same.connect()
        assert same.broker is old.broker
        for other in (name, f"{name}?rabbitmq=4.0"):
            with pytest.raises(ConfigurationError, match=r"open with .*3\.x.*same \?rabbitmq="):
                await MemoryTransport.shared(other).connect()
        await same.close()
        await old.close()
        again = MemoryTransport.shared(f"{name}?rabbitmq=4.0")  # the old broker is gone
        await again.connect()
        assert again.broker.rules.name == "RABBITMQ_4"
        await again.close()

    async def test_a_broker_of_ones_own_takes_rules(self) -> None:
        """MemoryBroker(rules=...) routes as those rules say, without any URL."""
        from burrowmq.framework.matching import Rules

        t = MemoryTransport(MemoryBroker(rules=Rules.RABBITMQ_3))
        await t.connect()
        await t.declare_exchange("h", "headers")
        await t.declare_queue("q")
        await t.bind_queue("q", "h", arguments={"n": 1})
        await t.publish("h", "", b"x", props(n=1.0))
        assert [m.body for m in t.broker.messages("q")] == [b"x"]
        await t.close()
