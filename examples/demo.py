"""Run the example system end to end and print what happened.

Uses the RabbitMQ at ``$BURROWMQ_URL`` (default ``amqp://guest:guest@localhost:5672/``);
where none answers, falls back to the in-memory transport and says so.

    python -m examples.demo
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

from burrowmq import App, BrokerUnreachable, ConfigurationError
from burrowmq.framework.log import configure
from examples import direct, fanout, headers, shop, topic
from examples.models import ChargeCommand, Document, Invalidate, OrderPlaced


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _start() -> tuple[App, str]:
    url = os.environ.get("BURROWMQ_URL", "amqp://guest:guest@localhost:5672/")
    app = App([shop.router], url=url, name="shop-demo")
    try:
        await app.start()
        return app, f"RabbitMQ at {app.transport.description}"
    except BrokerUnreachable as exc:
        print(f"demo: {exc}")
    memory = App([shop.router], url="memory://demo", name="shop-demo")
    try:
        await memory.start()
    except ConfigurationError as exc:
        print(f"demo: no RabbitMQ answers and the in-memory transport is unavailable: {exc}")
        raise SystemExit(1) from None
    return memory, "the built-in in-memory transport (no RabbitMQ answered)"


async def main() -> int:
    """Start the shop, send one message of each kind, wait for the handlers, report."""
    configure(os.environ.get("BURROWMQ_LOG_LEVEL", "warning"))
    app, where = await _start()
    print(f"demo: running the shop example against {where}")
    try:
        for order_id, currency in (("o-1", "EUR"), ("o-2", "USD"), ("o-3", "XXX")):
            cmd = ChargeCommand(order_id=order_id, amount=12.5, currency=currency)
            await app.publish("billing", cmd, routing_key="charge")
        for key in ("order.eu.placed", "order.us.placed", "order.eu.shipped"):
            event = OrderPlaced(order_id=key.split(".")[1], region=key.split(".")[1], total=1)
            await app.publish("orders", event, routing_key=key)
        await app.publish("cache.invalidate", Invalidate(key="user:1"))
        await app.publish(
            "docs", Document(doc_id="d-1", title="A"), headers={"format": "pdf", "lang": "en"}
        )
        await app.publish(
            "docs", Document(doc_id="d-2", title="B"), headers={"format": "doc", "vip": True}
        )
        await app.publish(
            "docs", Document(doc_id="d-3", title="C"), headers={"format": "doc", "lang": "en"}
        )
        ok = await _until(
            lambda: (
                len(direct.charged) >= 2
                and len(topic.audited) >= 2
                and "user:1" not in fanout.cache
                and len(headers.rendered) >= 2
            )
        )
    finally:
        await app.stop()
    print(f"demo: billing charged {sorted(direct.charged)}; o-3 (currency XXX) was dead-lettered")
    print(f"demo: audit saw {sorted(topic.audited)} (order.eu.shipped matched no pattern)")
    print(f"demo: cache now holds {sorted(fanout.cache)} (user:1 invalidated by broadcast)")
    print(f"demo: rendering did {sorted(headers.rendered)} (d-3 matched neither binding)")
    if not ok:
        print("demo: FAILED: not every handler saw its messages within 10 s")
        return 1
    print("demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
