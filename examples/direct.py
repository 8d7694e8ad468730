"""Direct exchange: commands to one queue, shared by every instance of the service.

Run it: ``burrowmq run examples.direct:app``; publish with
``await app.publish("billing", ChargeCommand(...), routing_key="charge")``.
"""

from __future__ import annotations

import structlog

from burrowmq import App, Message, Reject, Router
from examples.models import ChargeCommand

router = Router()
log = structlog.get_logger("examples.billing")
charged: list[str] = []


@router.direct("billing", "charge", queue="billing.charge")
async def charge(cmd: ChargeCommand, message: Message) -> None:
    """Charge the customer; refuse currencies we cannot take."""
    if cmd.currency not in {"EUR", "USD"}:
        raise Reject(f"unsupported currency {cmd.currency}")
    charged.append(cmd.order_id)
    log.info("charged", order_id=cmd.order_id, amount=cmd.amount, attempt=message.attempt)


app = App([router], name="billing")
