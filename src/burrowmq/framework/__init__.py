"""Framework: transports (AMQP, memory), Message, codecs, logging and URLs."""

from __future__ import annotations

from burrowmq.framework.codec import decoder_for, encode
from burrowmq.framework.idempotency import (
    Idempotency,
    IdempotencyStore,
    MemoryIdempotencyStore,
)
from burrowmq.framework.message import Message
from burrowmq.framework.transport import Delivery, Properties, Subscription, Transport
from burrowmq.framework.urls import mask_url

__all__ = [
    "Delivery",
    "Idempotency",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "Message",
    "Properties",
    "Subscription",
    "Transport",
    "decoder_for",
    "encode",
    "mask_url",
]
