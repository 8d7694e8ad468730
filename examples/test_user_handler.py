"""Testing your own handlers with burrowmq.testing: no broker, milliseconds per test.

This is how the README tells users to test a service: hand its ``App`` to a
``TestClient``, publish, wait until the handlers are done, and look at the outcome —
what they recorded, what they published, what was dead-lettered, what an RPC returned.
Run it with ``pytest examples/test_user_handler.py``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from burrowmq import RemoteError, Unroutable
from burrowmq.testing import TestClient
from examples import direct, rpc_pricing, topic
from examples.models import ChargeCommand, OrderPlaced

pytestmark = pytest.mark.examples


class TestBilling:
    """The billing service of examples/direct.py, on the in-memory broker."""

    async def test_charge_is_recorded(self) -> None:
        """A valid charge command reaches the handler, which records the order."""
        async with TestClient(direct.app) as client:
            command = ChargeCommand(order_id="t-1", amount=9.5)
            await client.publish_and_wait("billing", command, routing_key="charge")
        assert "t-1" in direct.charged

    async def test_unsupported_currency_is_dead_lettered(self) -> None:
        """A rejected command lands in the dead-letter queue with the rejection reason."""
        async with TestClient(direct.app) as client:
            command = ChargeCommand(order_id="t-2", amount=1, currency="JPY")
            await client.publish_and_wait("billing", command, routing_key="charge")
            [dead] = client.dead_letters("billing.charge")
        assert dead.exception_type == "Reject"
        assert dead.reason == "unsupported currency JPY"
        assert dead.decode(ChargeCommand).order_id == "t-2"
        assert "t-2" not in direct.charged

    async def test_invalid_payload_is_dead_lettered_without_retries(self) -> None:
        """A payload that does not validate is dead-lettered at once, never retried."""
        async with TestClient(direct.app) as client:
            await client.publish_and_wait("billing", {"order_id": "t-3"}, routing_key="charge")
            [dead] = client.dead_letters("billing.charge")
        assert dead.exception_type == "DecodeError"
        assert dead.retry_count == 0

    async def test_wrong_routing_key_reaches_nobody(self) -> None:
        """A mandatory publish with a key nobody bound raises Unroutable."""
        command = ChargeCommand(order_id="t-4", amount=1)
        async with TestClient(direct.app) as client:
            with pytest.raises(Unroutable):
                await client.publish("billing", command, routing_key="refund", mandatory=True)


class TestAudit:
    """Topic patterns of examples/topic.py, with what the handler saw."""

    async def test_patterns_pick_the_right_events(self) -> None:
        """order.*.placed and order.#.cancelled match; other keys do not."""
        event = OrderPlaced(order_id="t-5", region="eu", total=3.0)
        async with TestClient(topic.app) as client:
            for key in ("order.eu.placed", "order.eu.x.cancelled", "order.eu.x.placed"):
                await client.publish("orders", event, routing_key=key)
            await client.wait_idle()
            assert [m.routing_key for m in client.published_to("orders")] == [
                "order.eu.placed",
                "order.eu.x.cancelled",
                "order.eu.x.placed",
            ]
        assert ("order.eu.placed", "t-5") in topic.audited
        assert ("order.eu.x.cancelled", "t-5") in topic.audited
        assert ("order.eu.x.placed", "t-5") not in topic.audited


class TestPricing:
    """The RPC service of examples/rpc_pricing.py, called through the test client."""

    async def test_quote(self) -> None:
        """A quote comes back typed, with the coupon applied."""
        async with TestClient(rpc_pricing.app) as client:
            request = rpc_pricing.QuoteRequest(sku="tea", quantity=2, coupon="TENOFF")
            quote = await client.call("pricing.quote", request, returns=rpc_pricing.Quote)
        assert quote.total == Decimal("8.10")

    async def test_unknown_sku_raises_remote_error(self) -> None:
        """A handler exception comes back as RemoteError with the remote type name."""
        async with TestClient(rpc_pricing.app) as client:
            with pytest.raises(RemoteError) as caught:
                await client.call("pricing.quote", {"sku": "gold", "quantity": 1})
        assert caught.value.type == "UnknownSkuError"
