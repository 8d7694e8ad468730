"""Delayed delivery on the real broker: the shared ladder, exact to the second, in order."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta

import pytest

from burrowmq import App, Message, Retry, Router
from burrowmq.framework.transport import Delivery
from burrowmq.routing.delay import DELIVER_EXCHANGE, LEVELS, OUTBOX, OUTBOX_DLQ, level_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _receiver(queue: str, arrivals: list[tuple[str, float]]) -> Router:
    router = Router()

    @router.consume(queue, queue_options={"type": "quorum"})
    async def receive(body: dict, message: Message) -> None:
        arrivals.append((body["name"], time.time()))

    return router


async def _wait_count(items: list, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < count:
        assert time.monotonic() < deadline, f"{len(items)} of {count} arrived in {timeout}s"
        await asyncio.sleep(0.02)


class TestDelayedPublish:
    async def test_delays_arrive_within_a_second_of_due_in_due_order(
        self, fresh_vhost: str
    ) -> None:
        """Messages delayed 7 s and 1 s (a timedelta and seconds) arrive within 1 s of due, 1 s first."""
        arrivals: list[tuple[str, float]] = []
        queue = "delays.target"
        app = App(_receiver(queue, arrivals), url=fresh_vhost, topology=None)
        async with app:
            # The first delayed publish declares the ladder (28 quorum queues on a new vhost).
            await app.publish("", {"name": "warm-up"}, routing_key="nowhere", delay=3600)
            sent = {"seven": time.time()}
            await app.publish("", {"name": "seven"}, routing_key=queue, delay=timedelta(seconds=7))
            sent["one"] = time.time()
            await app.publish("", {"name": "one"}, routing_key=queue, delay=1)
            await _wait_count(arrivals, 2, 15)
        due = {"one": 1, "seven": 7}
        errors = {name: round(at - sent[name] - due[name], 3) for name, at in arrivals}
        print(f"\ndelay errors (s): {errors}")
        assert [name for name, _ in arrivals] == ["one", "seven"]
        assert all(-0.6 < error < 1.0 for error in errors.values()), errors

    @pytest.mark.slow
    async def test_a_65_second_delay(self, fresh_vhost: str) -> None:
        """A 65 s delay (levels 6 and 0) arrives within a second of due, after a 2 s one."""
        arrivals: list[tuple[str, float]] = []
        queue = "delays.long"
        app = App(_receiver(queue, arrivals), url=fresh_vhost)
        async with app:
            await app.publish("", {"name": "warm-up"}, routing_key="nowhere", delay=3600)
            sent = {"long": time.time()}
            await app.publish("", {"name": "long"}, routing_key=queue, delay=65)
            sent["short"] = time.time()
            await app.publish("", {"name": "short"}, routing_key=queue, delay=2)
            await _wait_count(arrivals, 2, 80)
        errors = {
            name: round(at - sent[name] - {"long": 65, "short": 2}[name], 3)
            for name, at in arrivals
        }
        print(f"\ndelay errors (s): {errors}")
        assert [name for name, _ in arrivals] == ["short", "long"]
        assert all(-0.6 < error < 1.0 for error in errors.values()), errors

    async def test_ladder_is_shared_and_fixed(self, fresh_vhost: str, management) -> None:
        """Many different delays use the one ladder: 28 level queues and the outbox, nothing per delay."""
        queue = "delays.many"
        app = App(_receiver(queue, []), url=fresh_vhost)
        async with app:
            for seconds in (3, 17, 250, 4000, 86_400, 2**27):
                await app.publish("", {"name": str(seconds)}, routing_key=queue, delay=seconds)
            vhost = fresh_vhost.rsplit("/", 1)[1]
            queues = await management.request("GET", f"/api/queues/{vhost}")
        names = {q["name"] for q in queues}
        ladder = {OUTBOX, OUTBOX_DLQ} | {level_name(k) for k in range(LEVELS)}
        assert names == {queue, f"{queue}.dlq"} | ladder

    async def test_retry_waits_go_down_the_ladder_and_back(self, fresh_vhost: str) -> None:
        """A retry wait of 3 s returns the message to its queue after 3 s with x-retry-count 1, attempt 2."""
        seen: list[tuple[int, float, str]] = []
        router = Router()

        @router.consume(
            "delays.retry", retry=Retry(attempts=2, wait=3), queue_options={"type": "quorum"}
        )
        async def flaky(body: dict, message: Message) -> None:
            seen.append((message.attempt, time.time(), message.routing_key))
            if message.attempt == 1:
                raise RuntimeError("not yet")

        app = App(router, url=fresh_vhost)
        async with app:
            await app.publish("", {"n": 1}, routing_key="delays.retry")
            await _wait_count(seen, 2, 15)
        (first, at1, _), (second, at2, key) = seen
        print(f"\nretry waited {at2 - at1:.2f}s")
        assert (first, second, key) == (1, 2, "delays.retry")
        assert 2.5 < at2 - at1 < 4.0


@pytest.fixture(params=["memory", "rabbitmq"])
def delay_url(request: pytest.FixtureRequest) -> str:
    """A fresh vhost of the real broker, or a fresh named memory broker."""
    if request.param == "memory":
        return f"memory://forwarder-{uuid.uuid4().hex[:8]}"
    return str(request.getfixturevalue("fresh_vhost"))


class TestForgedOutbox:
    async def test_forged_outbox_messages_are_parked_not_lost_not_looped(
        self, delay_url: str
    ) -> None:
        """Outbox messages the forwarder must not or cannot forward are parked with the reason.

        Forged beside one good message: no destination, an unfit one, two destinations
        inside the ladder (a loop), direct reply-to, a missing exchange and no queue
        bound. The good one is delivered; each bad one is parked once in the outbox's
        DLQ, confirmed, with its reason; the outbox ends empty; nothing is dropped.
        """
        arrivals: list[tuple[str, float]] = []
        target = "fwd.target"
        app = App(_receiver(target, arrivals), url=delay_url)
        zero_key = "0." * LEVELS + OUTBOX
        forged: dict[str, tuple[dict[str, object], str]] = {
            "no-headers": ({}, "DelayDestinationMissing"),
            "int-exchange": (
                {"x-delay-exchange": 1234, "x-delay-routing-key": target},
                "DelayDestinationMissing",
            ),
            "ladder-exchange": (
                {"x-delay-exchange": DELIVER_EXCHANGE, "x-delay-routing-key": zero_key},
                "DelayDestinationRefused",
            ),
            "ladder-queue": (
                {"x-delay-exchange": "", "x-delay-routing-key": OUTBOX},
                "DelayDestinationRefused",
            ),
            "reply-to": (
                {"x-delay-exchange": "", "x-delay-routing-key": "amq.rabbitmq.reply-to.g2dkAAAA"},
                "DelayDestinationRefused",
            ),
            "missing-exchange": (
                {"x-delay-exchange": "fwd.no-such-exchange", "x-delay-routing-key": "k"},
                "PublishError",
            ),
            "unroutable": (
                {"x-delay-exchange": "amq.direct", "x-delay-routing-key": "fwd.nobody"},
                "Unroutable",
            ),
        }
        async with app:
            # The first delayed publish declares the ladder and starts the forwarder.
            await app.publish("", {"name": "warm-up"}, routing_key="nowhere", delay=3600)
            for name, (headers, _) in forged.items():
                await app.publish("", {"name": name}, routing_key=OUTBOX, headers=headers)
            await app.publish(
                "",
                {"name": "good"},
                routing_key=OUTBOX,
                headers={"x-delay-exchange": "", "x-delay-routing-key": target},
            )
            await _wait_count(arrivals, 1, 15)
            parked = await _take(app, OUTBOX_DLQ, len(forged), timeout=15)
            await asyncio.sleep(0.5)  # anything more (a loop, a repeat) would show now
            extra = await _take(app, OUTBOX_DLQ, 1, timeout=0.5, allow_fewer=True)
            outbox_left = await _take(app, OUTBOX, 1, timeout=0.5, allow_fewer=True)
        assert [name for name, _ in arrivals] == ["good"]
        reasons = {
            json.loads(d.body)["name"]: (
                d.properties.headers["x-exception-type"],
                d.properties.headers["x-exception-message"],
                d.properties.headers["x-original-queue"],
            )
            for d in parked
        }
        print(f"\nparked: { {k: v[0] for k, v in reasons.items()} }")
        assert {k: v[0] for k, v in reasons.items()} == {k: v[1] for k, v in forged.items()}
        assert all(queue == OUTBOX for _, _, queue in reasons.values())
        assert "loop" in reasons["ladder-exchange"][1]
        assert "fwd.no-such-exchange" in reasons["missing-exchange"][1]
        missing = next(d for d in parked if json.loads(d.body)["name"] == "missing-exchange")
        # Where it was going is kept, for `burrowmq dlq replay` once the exchange exists.
        assert missing.properties.headers["x-original-exchange"] == "fwd.no-such-exchange"
        assert missing.properties.headers["x-original-routing-key"] == "k"
        assert "x-delay-exchange" not in missing.properties.headers
        assert extra == [] and outbox_left == []


async def _take(
    app: App, queue: str, count: int, *, timeout: float, allow_fewer: bool = False
) -> list[Delivery]:
    """Consume and ack up to ``count`` messages of ``queue`` through the app's transport."""
    got: asyncio.Queue[Delivery] = asyncio.Queue()
    subscription = await app.transport.consume(queue, got.put_nowait, prefetch=max(count, 1))
    taken: list[Delivery] = []
    try:
        async with asyncio.timeout(timeout):
            while len(taken) < count:
                delivery = await got.get()
                await delivery.ack()
                taken.append(delivery)
    except TimeoutError:
        if not allow_fewer:
            raise AssertionError(f"{len(taken)} of {count} in {queue} after {timeout}s") from None
    finally:
        await subscription.close()
    return taken
