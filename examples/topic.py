"""Topic exchange: pattern subscriptions (``*`` one word, ``#`` zero or more).

Run it: ``burrowmq run examples.topic:app``.
"""

from __future__ import annotations

import structlog

from burrowmq import App, Message, Router
from examples.models import OrderPlaced

router = Router()
log = structlog.get_logger("examples.audit")
audited: list[tuple[str, str]] = []


@router.topic("orders", ["order.*.placed", "order.#.cancelled"], queue="audit.orders")
async def audit(event: OrderPlaced, message: Message) -> None:
    """Record every placed order of any region, and every cancellation."""
    audited.append((message.routing_key, event.order_id))
    log.info("audited", routing_key=message.routing_key, order_id=event.order_id)


app = App([router], name="audit")
