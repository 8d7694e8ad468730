"""How a message route settles: checked copies, mandatory placement, back-off, delay tiers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from burrowmq.exceptions import BurrowError, PublishError, Unroutable
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.transport import Properties
from burrowmq.routing import settle as settle_module
from burrowmq.routing.delay import entry
from burrowmq.routing.pipeline import Inbound
from burrowmq.routing.settle import MessageSettle, reason_of
from burrowmq.routing.signals import Reject

pytestmark = pytest.mark.unit


@dataclass
class FakeDelivery:
    body: bytes = b"{}"
    properties: Properties = field(default_factory=lambda: Properties(message_id="m1"))
    exchange: str = "orders"
    routing_key: str = "eu"
    redelivered: bool = False
    delivery_tag: int = 1
    stale: bool = False
    undecodable: dict[str, Any] = field(default_factory=dict)
    outcome: list[str] = field(default_factory=list)

    async def settle_pending(self) -> None:
        return None

    async def ack(self) -> bool:
        self.outcome.append("ack")
        return True

    async def nack(self, *, requeue: bool) -> bool:
        self.outcome.append(f"nack(requeue={requeue})")
        return True


class FakeTransport:
    """Publishes are recorded; ``refuse`` makes them fail with that error."""

    def __init__(self, refuse: BurrowError | None = None) -> None:
        self.published: list[tuple[str, str, Properties, bool]] = []
        self.declared: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: Properties, **kw: Any
    ) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.published.append((exchange, routing_key, properties, kw.get("mandatory", False)))

    async def declare_queue(self, name: str, **kw: Any) -> str:
        self.declared.append((name, dict(kw.get("arguments") or {})))
        return name


def _inbound(delivery: FakeDelivery, attempt: int = 3) -> Inbound:
    return Inbound(delivery, "work", delivery.exchange, delivery.routing_key, attempt)  # type: ignore[arg-type]


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the pauses before a message is returned to its queue, instead of waiting."""
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(settle_module.asyncio, "sleep", sleep)
    return pauses


class TestDeadLetter:
    """Dead-letter copies: checked, mandatory, confirmed before the ack."""

    async def test_copy_is_mandatory_checked_and_without_x_death(self) -> None:
        """The copy goes mandatory to the DLX with burrowmq's headers, fit for the wire, no x-death."""
        transport = FakeTransport()
        settle = MessageSettle(transport, MessageBuilder(), dead_letter_exchange="work.dlx")  # type: ignore[arg-type]
        delivery = FakeDelivery(
            properties=Properties(
                message_id="m1",
                headers={"x-death": [{"count": 1}], "raw": b"\xff", "keep": 1},
                expiration="1000",
            )
        )
        await settle.failed(_inbound(delivery), ValueError("boom"))
        [(exchange, routing_key, props, mandatory)] = transport.published
        assert (exchange, routing_key, mandatory) == ("work.dlx", "eu", True)
        assert "x-death" not in props.headers
        assert props.headers["raw"] == bytearray(b"\xff")
        assert props.headers["keep"] == 1
        assert props.headers["x-exception-type"] == "ValueError"
        assert props.headers["x-retry-count"] == 2
        assert (props.expiration, props.delivery_mode) == (None, 2)
        assert delivery.outcome == ["ack"]

    async def test_undecodable_properties_are_kept_raw(self) -> None:
        """What the AMQP library could not decode travels with the dead letter."""
        transport = FakeTransport()
        settle = MessageSettle(transport, MessageBuilder(), dead_letter_exchange="work.dlx")  # type: ignore[arg-type]
        delivery = FakeDelivery(undecodable={"timestamp": 253402300800000000})
        await settle.invalid(_inbound(delivery, 1), settle_module.DecodeError("properties"))
        [(_, _, props, _)] = transport.published
        assert props.headers["x-undecodable-properties"] == {"timestamp": 253402300800000000}

    @pytest.mark.parametrize(
        "error", [Unroutable("the DLQ is gone"), PublishError("nacked"), PublishError("bad header")]
    )
    async def test_a_copy_that_cannot_be_placed_leaves_the_original(
        self, no_pause: list[float], error: BurrowError
    ) -> None:
        """Not acked into nothing: returned to its queue after a pause, at error level."""
        settle = MessageSettle(
            FakeTransport(refuse=error), MessageBuilder(), dead_letter_exchange="work.dlx"
        )  # type: ignore[arg-type]
        delivery = FakeDelivery()
        with capture_logs() as logs:
            await settle.rejected(_inbound(delivery), Reject("no"))
        assert delivery.outcome == ["nack(requeue=True)"]
        assert [e["log_level"] for e in logs if e["event"] == "dead_letter_failed"] == ["error"]
        assert 0.8 <= no_pause[0] <= 1.2

    async def test_pauses_grow_for_the_same_message(self, no_pause: list[float]) -> None:
        """Each failure of the same message doubles its pause, up to a minute."""
        settle = MessageSettle(
            FakeTransport(refuse=Unroutable("gone")), MessageBuilder(), dead_letter_exchange="x"
        )  # type: ignore[arg-type]
        for _ in range(9):
            await settle.failed(_inbound(FakeDelivery()), ValueError("boom"))
        bases = [
            round(p / b) for p, b in zip(no_pause, [1, 2, 4, 8, 16, 32, 60, 60, 60], strict=True)
        ]
        assert bases == [1] * 9

    def test_reason_is_redacted(self) -> None:
        """Credentials in an exception's text never reach the dead-letter headers."""
        reason = reason_of(RuntimeError("postgresql://app:s3cr3t@db/x password=hunter2"))
        assert "s3cr3t" not in reason and "hunter2" not in reason


class TestDelayLadder:
    """Long retries go down the shared delay ladder, addressed to their work queue."""

    async def test_park_publishes_to_the_ladder_mandatory(self) -> None:
        """A 5 s park enters level 2 with the bits of 5 and the queue's name; persistent, counted, no x-death."""
        transport = FakeTransport()
        settle = MessageSettle(
            transport, MessageBuilder(), dead_letter_exchange="work.dlx", declare=False
        )  # type: ignore[arg-type]
        delivery = FakeDelivery(properties=Properties(message_id="m", headers={"x-death": []}))
        assert await settle.park(_inbound(delivery, 2), 5.2)
        assert delivery.outcome == ["ack"]
        [(exchange, routing_key, props, mandatory)] = transport.published
        assert (exchange, routing_key) == entry(5, "work")
        assert exchange == "burrowmq.delay.2"
        assert routing_key == "0." * 25 + "1.0.1.work"
        assert (mandatory, props.delivery_mode) == (True, 2)
        assert props.headers["x-retry-count"] == 2
        assert "x-death" not in props.headers
