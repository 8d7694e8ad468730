"""Message: the metadata a handler sees of one delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Message"]


@dataclass(slots=True, frozen=True)
class Message:
    """The metadata of one delivered message, for handlers that ask for it.

    A handler receives it by declaring a parameter annotated ``Message``::

        async def audit(event: OrderPlaced, message: Message) -> None: ...

    Attributes:
        body: the raw body, as received.
        headers: the AMQP headers table (burrowmq's own ``x-*`` headers included).
        exchange: the exchange the message was published to (``""``: default exchange).
        routing_key: the routing key it was published with.
        message_id: the publisher's message id.
        correlation_id: the correlation id, for replies and tracing.
        redelivered: whether the broker delivered it before (a consumer died holding it).
        attempt: 1 on the first delivery to the handler, 2 on the first retry, ...
        content_type: the MIME type the publisher declared.
        timestamp: when it was published, if the publisher said.
        reply_to: where a reply should go (RPC).
        queue: the queue it was consumed from.
        offset: its offset in the stream it was read from (``None``: not a stream).
    """

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    exchange: str = ""
    routing_key: str = ""
    message_id: str | None = None
    correlation_id: str | None = None
    redelivered: bool = False
    attempt: int = 1
    content_type: str | None = None
    timestamp: datetime | None = None
    reply_to: str | None = None
    queue: str = ""
    offset: int | None = None
