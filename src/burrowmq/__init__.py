"""burrowmq: an asyncio framework for services that talk over RabbitMQ.

Decorate async handlers on a :class:`Router`, give the routers to an :class:`App`, and
``async with app:`` declares the topology, consumes, acks only after success, retries,
dead-letters what cannot be processed and answers remote procedure calls.
"""

from __future__ import annotations

from burrowmq.app import App, AppState
from burrowmq.exceptions import (
    BrokerUnreachable,
    BurrowError,
    ConfigurationError,
    ConnectionLost,
    DecodeError,
    EncodeError,
    HandlerTimeout,
    LifespanError,
    NoRoute,
    NoServer,
    PublishBatchError,
    PublishError,
    PublishNacked,
    RemoteError,
    RpcError,
    RpcTimeout,
    StateError,
    TooManyRedeliveries,
    TopologyError,
    TopologyProblem,
    TransportError,
    Unroutable,
)
from burrowmq.framework.codec import BytesCodec, Codec, JsonCodec, MsgPackCodec, TextCodec
from burrowmq.framework.idempotency import (
    Idempotency,
    IdempotencyStore,
    MemoryIdempotencyStore,
)
from burrowmq.framework.message import Message
from burrowmq.framework.tls import TLS
from burrowmq.routing.batch import Batch
from burrowmq.routing.depends import Depends
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import Route
from burrowmq.routing.router import Router
from burrowmq.routing.schedule import Schedule
from burrowmq.routing.signals import BatchError, Reject
from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Stream, Topology

__all__ = [  # noqa: RUF022 - plainly sorted, as the export test checks
    "App",
    "AppState",
    "Batch",
    "BatchError",
    "Binding",
    "BrokerUnreachable",
    "BurrowError",
    "BytesCodec",
    "Codec",
    "ConfigurationError",
    "ConnectionLost",
    "DecodeError",
    "Depends",
    "EncodeError",
    "Exchange",
    "HandlerTimeout",
    "Idempotency",
    "IdempotencyStore",
    "JsonCodec",
    "LifespanError",
    "MemoryIdempotencyStore",
    "Message",
    "MsgPackCodec",
    "NoRoute",
    "NoServer",
    "Policy",
    "PublishBatchError",
    "PublishError",
    "PublishNacked",
    "Queue",
    "Reject",
    "RemoteError",
    "Retry",
    "Route",
    "Router",
    "RpcError",
    "RpcTimeout",
    "Schedule",
    "StateError",
    "Stream",
    "TLS",
    "TextCodec",
    "TooManyRedeliveries",
    "Topology",
    "TopologyError",
    "TopologyProblem",
    "TransportError",
    "Unroutable",
]

__version__ = "0.1.0.dev0"
