"""Bindings: exchanges, queues, servers and burrowmq's headers in AsyncAPI's AMQP words.

AsyncAPI's AMQP bindings (version 0.3.0) describe a channel as an exchange (``is:
routingKey``) or a queue (``is: queue``) and an operation by its routing keys (``cc``)
and delivery mode. What they have no field for (queue arguments, header-table
bindings) goes into ``x-amqp-*`` extensions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from burrowmq.framework.urls import MEMORY_SCHEME, vhost_of
from burrowmq.routing.dead_letter import (
    HEADER_EXCEPTION_MESSAGE,
    HEADER_EXCEPTION_TYPE,
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_QUEUE,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_RETRY_COUNT,
    HEADER_UNDECODABLE,
    MAX_RETRY_COUNT,
)
from burrowmq.rpc.protocol import HEADER_DEADLINE
from burrowmq.topology.model import Binding, Exchange, Queue

__all__ = [
    "BINDING_VERSION",
    "DEAD_LETTER_HEADERS",
    "REQUEST_HEADERS",
    "RETRY_HEADERS",
    "SECURITY_SCHEME",
    "binding_extension",
    "exchange_binding",
    "queue_binding",
    "servers",
]

BINDING_VERSION = "0.3.0"
SECURITY_SCHEME = "userPassword"
_EXCHANGE_TYPES = frozenset({"topic", "direct", "fanout", "default", "headers"})


def exchange_binding(exchange: Exchange, vhost: str) -> dict[str, Any]:
    """The AMQP channel binding of an exchange (``is: routingKey``)."""
    described: dict[str, Any] = {"name": exchange.name}
    if exchange.type in _EXCHANGE_TYPES:  # a plugin's x-* type has no word in the binding
        described["type"] = exchange.type
    described.update(
        durable=exchange.durable,
        autoDelete=exchange.auto_delete,
        vhost=exchange.vhost or vhost,
    )
    return {"amqp": {"is": "routingKey", "exchange": described, "bindingVersion": BINDING_VERSION}}


def queue_binding(queue: Queue, vhost: str, *, name: str | None = None) -> dict[str, Any]:
    """The AMQP channel binding of a queue (``is: queue``); ``name`` as addressed."""
    described = {
        "name": queue.name if name is None else name,
        "durable": queue.durable,
        "exclusive": queue.exclusive,
        "autoDelete": queue.auto_delete,
        "vhost": queue.vhost or vhost,
    }
    return {"amqp": {"is": "queue", "queue": described, "bindingVersion": BINDING_VERSION}}


def binding_extension(binding: Binding) -> dict[str, Any]:
    """A binding, for the ``x-amqp-bindings`` list of an exchange's channel."""
    out: dict[str, Any] = {
        "destination": binding.destination,
        "destinationType": binding.destination_type,
        "routingKey": binding.routing_key,
    }
    if binding.arguments:
        out["arguments"] = dict(binding.arguments)
    return out


def servers(urls: tuple[str, ...]) -> dict[str, Any]:
    """The servers of an App's URLs: scheme, host and vhost; never the credentials.

    ``memory://`` URLs (the in-process transport) are no servers.
    """
    out: dict[str, Any] = {}
    amqp = [url for url in urls if not url.startswith(f"{MEMORY_SCHEME}:")]
    for index, url in enumerate(amqp, start=1):
        parts = urlsplit(url)
        secure = parts.scheme == "amqps"
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        port = parts.port or (5671 if secure else 5672)
        vhost = vhost_of(url)
        name = "broker" if len(amqp) == 1 else f"node{index}"
        out[name] = {
            "host": f"{host}:{port}",
            "protocol": "amqps" if secure else "amqp",
            "protocolVersion": "0-9-1",
            "pathname": parts.path or "/",
            "description": f"RabbitMQ, virtual host {unquote(vhost)!r}"
            + ("" if len(amqp) == 1 else f" (cluster node {index} of {len(amqp)})"),
            "security": [{"$ref": f"#/components/securitySchemes/{SECURITY_SCHEME}"}],
        }
    return out


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "maxLength": 255, "description": description}


_RETRY_COUNT = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_RETRY_COUNT,
    "description": "retries the message had before (its attempt is one more)",
}

REQUEST_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The headers burrowmq sets on an RPC request.",
    "properties": {
        HEADER_DEADLINE: {
            "type": "integer",
            "description": "when the caller gives up, in milliseconds since the epoch; "
            "a server drops a request past it",
        },
    },
}

RETRY_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The headers of a copy waiting out a retry in a delay queue, and of "
    "the delivery it returns as.",
    "properties": {
        HEADER_RETRY_COUNT: _RETRY_COUNT,
        HEADER_ORIGINAL_EXCHANGE: _string("the exchange the message was first published to"),
        HEADER_ORIGINAL_ROUTING_KEY: _string("the routing key it was first published with"),
    },
    "required": [HEADER_RETRY_COUNT],
}

DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The headers of a dead-lettered copy (the original's own headers are "
    "kept, x-death dropped).",
    "properties": {
        HEADER_EXCEPTION_TYPE: {
            "type": "string",
            "description": "the exception's class name, or Reject, DecodeError, HandlerTimeout",
        },
        HEADER_EXCEPTION_MESSAGE: {
            "type": "string",
            "description": "its message (credentials redacted), or the rejection reason",
        },
        HEADER_ORIGINAL_EXCHANGE: _string("the exchange the message was first published to"),
        HEADER_ORIGINAL_ROUTING_KEY: _string("the routing key it was first published with"),
        HEADER_ORIGINAL_QUEUE: _string("the queue it was consumed from"),
        HEADER_RETRY_COUNT: _RETRY_COUNT,
        HEADER_UNDECODABLE: {
            "type": "object",
            "description": "properties the AMQP library could not decode, raw",
        },
    },
    "required": [
        HEADER_EXCEPTION_TYPE,
        HEADER_EXCEPTION_MESSAGE,
        HEADER_ORIGINAL_EXCHANGE,
        HEADER_ORIGINAL_ROUTING_KEY,
        HEADER_ORIGINAL_QUEUE,
        HEADER_RETRY_COUNT,
    ],
}
