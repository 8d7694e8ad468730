"""Framework: the transport contract and the values every layer shares (Message,
codecs, the message builder, middleware, idempotency, the lifespan, URLs, log,
matching, RabbitMQ's vocabulary). No I/O library; everything else in burrowmq may
import it.
"""

from __future__ import annotations

from burrowmq.framework.message import Message
from burrowmq.framework.transport import (
    Delivery,
    Properties,
    ReplyChannel,
    Subscription,
    Transport,
)

__all__ = ["Delivery", "Message", "Properties", "ReplyChannel", "Subscription", "Transport"]
