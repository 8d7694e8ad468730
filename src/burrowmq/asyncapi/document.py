"""Document: an App's AsyncAPI 3.0 document, from its routes, topology and models.

Every exchange and queue of the App's topology (its YAML merged with what its routes
declare, and an extra file if given) is a channel. Each handler is a ``receive``
operation on its queue; each RPC procedure also a ``send`` of the request to the
``burrowmq.rpc`` exchange, both with the reply (the result, or the error envelope) on
the direct reply-to pseudo-queue. The paths of failures are ``send`` operations too:
the dead-letter copy to ``<base>.dlx`` (its queue ``<base>.dlq``) and the retry copy into
the delay ladder (back through ``burrowmq.delay.deliver``), with burrowmq's ``x-*`` headers.

Per-instance queues (``<exchange>.<handler>.<instance id>``) are addressed with an
``{instance}`` parameter. The servers name scheme, host and vhost, never credentials.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from burrowmq.app import App
from burrowmq.asyncapi.bindings import (
    BINDING_VERSION,
    DEAD_LETTER_HEADERS,
    REQUEST_HEADERS,
    RETRY_HEADERS,
    SECURITY_SCHEME,
    binding_extension,
    servers,
)
from burrowmq.asyncapi.channels import Channels, ident, summary_of
from burrowmq.framework.codec import JSON
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO
from burrowmq.routing.dead_letter import dead_letter_exchange, dead_letter_queue
from burrowmq.routing.delay import (
    DELIVER_EXCHANGE,
    LEVELS,
    PREFIX,
    delivery_binding,
    level_name,
)
from burrowmq.routing.route import Route
from burrowmq.rpc.protocol import ERROR_TYPE, REPLY_TYPE, ErrorEnvelope
from burrowmq.topology.loader import merge_with
from burrowmq.topology.model import Topology

__all__ = ["ASYNCAPI_VERSION", "build_document", "dump_document"]

ASYNCAPI_VERSION = "3.0.0"


def build_document(
    app: App, *, topology: str | Path | Topology | None = None, version: str = "0.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``app``, as plain data (JSON-ready).

    Args:
        app: the App; it is not started (nothing connects).
        topology: a topology file (or model) merged with the App's own.
        version: ``info.version``, the version of the service's API.

    Raises:
        TopologyError: a topology file is bad, or conflicts with the App's.
        ConfigurationError: two handlers consume one queue.
    """
    return _Builder(app, merge_with(topology, app.topology()), version).build()


def dump_document(document: dict[str, Any], format: str = "yaml") -> str:
    """``document`` as YAML (``format="yaml"``) or JSON (``"json"``) text."""
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


class _Builder(Channels):
    """The document of one App: its channels, then an operation per route and path."""

    def __init__(self, app: App, topology: Topology, version: str) -> None:
        super().__init__(app.config.urls, app.instance_id, topology)
        self.app = app
        self.version = version

    # -- the document --------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        for exchange in self.topology.exchanges:
            self.exchange_channel(exchange)
        for queue in self.topology.queues:
            self.queue_channel(queue)
        for binding in self.topology.bindings:
            channel = self.channel_of.get(("exchange", binding.source))
            if channel is not None:
                described = binding_extension(binding)
                described["destination"] = self.address(binding.destination)
                self.channels[channel].setdefault("x-amqp-bindings", []).append(described)
        for route in self.app.routes:
            self._route(route)
        for described in self.channels.values():
            if not described.get("messages"):
                described.pop("messages", None)
        components: dict[str, Any] = {}
        if self.schemas.components:
            components["schemas"] = dict(sorted(self.schemas.components.items()))
        if self.messages:
            components["messages"] = self.messages
        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": self.app.config.name,
                "version": self.version,
                "description": f"The messaging API of the burrowmq service "
                f"{self.app.config.name!r}: what it consumes, what it answers, and where "
                "failed messages go.",
            },
            "defaultContentType": JSON,
        }
        found = servers(self.app.config.urls)
        if found:
            document["servers"] = found
            components["securitySchemes"] = {
                SECURITY_SCHEME: {
                    "type": "userPassword",
                    "description": "the broker's user name and password (AMQP PLAIN)",
                }
            }
        document["channels"] = self.channels
        document["operations"] = self.operations
        document["components"] = components
        return document

    # -- operations ----------------------------------------------------------------

    def _route(self, route: Route) -> None:
        func = route.spec.func
        queue_name = route.queue_name(self.instance_id)
        queue = self.queue_id(queue_name)
        payload = route.spec.payload_type
        type_name = getattr(payload, "__name__", None) or str(payload)
        if route.procedure is not None:
            self._rpc(route, queue, type_name)
            return
        op_id = self.new_id(self.operations, func.__name__)
        body = self.payload_message(payload, title=type_name, summary=summary_of(payload))
        exchanges = self._bound_exchanges(queue_name)
        message = self.message(f"{op_id}.message", body, queue, *exchanges)
        keys = [b.routing_key for b in route.bindings if not b.arguments]
        received = [message]
        retry = self._retries(route, op_id, queue_name, body)
        if retry is not None:
            self.message(retry, {}, queue)
            received.append(retry)
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{queue}"},
            "title": route.name,
            "description": self._describe_route(route, queue_name),
            "messages": self.refs(queue, *received),
            "bindings": {"amqp": {"ack": True, "bindingVersion": BINDING_VERSION}},
        }
        if summary := summary_of(func):
            operation["summary"] = summary
        if keys and any(keys):
            operation["bindings"]["amqp"]["cc"] = keys
        if route.exchange is not None:
            operation["x-amqp-bindings"] = [
                {"exchange": route.exchange.name, "routingKey": b.routing_key}
                | ({"arguments": dict(b.arguments)} if b.arguments else {})
                for b in route.bindings
            ]
        self.operations[op_id] = operation
        self._dead_letter(route, op_id, body)

    def _bound_exchanges(self, queue_name: str) -> list[str]:
        found = []
        for binding in self.topology.bindings:
            if binding.destination == queue_name and binding.destination_type == "queue":
                channel = self.channel_of.get(("exchange", binding.source))
                if channel is not None and channel not in found:
                    found.append(channel)
        return found

    def _describe_route(self, route: Route, queue_name: str) -> str:
        where = f"Consumes {self.address(queue_name)!r}"
        if route.exchange is not None:
            keys = ", ".join(
                repr(b.routing_key) if not b.arguments else f"headers {dict(b.arguments)!r}"
                for b in route.bindings
            )
            where += f", bound to the {route.exchange.type} exchange {route.exchange.name!r}"
            where += f" with {keys}" if keys else ""
        where += ". Acked after the handler returns."
        policy = route.retry or self.app.config.retry
        where += f" Up to {policy.attempts} attempt(s); then dead-lettered."
        if route.timeout is not None:
            where += f" Each attempt may take {route.timeout:g} s."
        return where

    def _retries(self, route: Route, op_id: str, queue: str, body: dict[str, Any]) -> str | None:
        """The retry copy's message and its ``send`` into the delay ladder, if ``queue`` uses it.

        A queue whose retries wait on the broker is bound to the ladder's delivery
        exchange; its copies enter the level of their wait's highest bit.
        """
        if delivery_binding(queue) not in self.topology.bindings:
            return None
        headers = self.schemas.add("RetryHeaders", RETRY_HEADERS)
        retry = self.message(
            f"{op_id}.retry",
            {
                **body,
                "title": f"{body['title']} (retry)",
                "headers": headers,
                "summary": "A copy parked for a retry, and the delivery it returns as.",
            },
        )
        top = self.channel_of[("exchange", level_name(LEVELS - 1))]
        back = self.channel_of[("exchange", DELIVER_EXCHANGE)]
        self.message(retry, {}, back)
        self.operations[self.new_id(self.operations, f"{op_id}.retry")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{back}"},
            "summary": f"Park a failed delivery of {route.name} until its next attempt.",
            "description": f"A wait of N seconds before the next attempt goes through the "
            f"delay ladder ({LEVELS} levels {PREFIX}.0 .. {PREFIX}.{LEVELS - 1}, level k "
            f"holding a message 2^k s, as the {self.channels[top].get('address', PREFIX)!r} "
            "channel shows for the top one): the copy is published to the level of N's "
            f"highest bit with the routing key of N's {LEVELS} bits (highest first, each 0 "
            "or 1, dot-separated) followed by the queue's name, and returns through "
            f"{DELIVER_EXCHANGE!r} to the queue, so that no consumer slot is held.",
            "messages": self.refs(back, retry),
            "bindings": {
                "amqp": {
                    "cc": [delivery_binding(queue).routing_key],
                    "deliveryMode": 2,
                    "bindingVersion": BINDING_VERSION,
                }
            },
        }
        return retry

    def _dead_letter(self, route: Route, op_id: str, body: dict[str, Any]) -> None:
        base = route.dead_letter_base()
        if base is None:
            return
        exchange = self.channel_of.get(("exchange", dead_letter_exchange(base)))
        if exchange is None:
            return
        queue = self.queue_id(dead_letter_queue(base))
        headers = self.schemas.add("DeadLetterHeaders", DEAD_LETTER_HEADERS)
        message = self.message(
            f"{op_id}.dead_letter",
            {
                **body,
                "title": f"{body['title']} (dead letter)",
                "headers": headers,
                "summary": "A copy of a message the handler could not process; the body is "
                "the original's (which may not match the payload schema: see "
                "x-exception-type).",
            },
            exchange,
            queue,
        )
        self.operations[self.new_id(self.operations, f"{op_id}.dead_letter")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{exchange}"},
            "summary": f"Dead-letter what {route.name} could not process.",
            "description": f"A rejected, undecodable or expired message, or one that failed "
            f"its last attempt, is copied to {dead_letter_exchange(base)!r} (held in "
            f"{dead_letter_queue(base)!r}), confirmed, and only then the original is acked.",
            "messages": self.refs(exchange, message),
            "bindings": {
                "amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": BINDING_VERSION}
            },
        }

    def _rpc(self, route: Route, queue: str, type_name: str) -> None:
        procedure = route.procedure
        assert procedure is not None
        func = route.spec.func
        exchange = self.channel_of[("exchange", route.exchange.name)] if route.exchange else None
        reply = self.reply_channel()
        payload = route.spec.payload_type
        request = self.message(
            f"{procedure}.request",
            {
                **self.payload_message(payload, title=type_name, summary=summary_of(payload)),
                "headers": self.schemas.add("RpcRequestHeaders", REQUEST_HEADERS),
            },
            queue,
            *([exchange] if exchange else []),
        )
        returns = route.spec.returns
        result = self.message(
            f"{procedure}.reply",
            {
                **self.payload_message(
                    returns,
                    mode="serialization",
                    title=getattr(returns, "__name__", None) or str(returns),
                    summary=f"The result of {procedure}.",
                ),
                "bindings": {
                    "amqp": {"messageType": REPLY_TYPE, "bindingVersion": BINDING_VERSION}
                },
            },
            reply,
        )
        error = self.message(
            "rpc.error",
            {
                "title": "RPC error",
                "summary": "The handler raised, the request did not validate "
                "(ValidationError), the method is unknown (UnknownProcedure) or the "
                "result did not fit the return annotation (ReplyInvalid).",
                "contentType": JSON,
                "payload": self.schemas.payload(ErrorEnvelope, "serialization"),
                "bindings": {
                    "amqp": {"messageType": ERROR_TYPE, "bindingVersion": BINDING_VERSION}
                },
            },
            reply,
        )
        answer = {
            "channel": {"$ref": f"#/channels/{reply}"},
            "messages": self.refs(reply, result, error),
        }
        summary = summary_of(func)
        name = ident(procedure)
        serve: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{queue}"},
            "title": route.name,
            "description": f"Serves {procedure!r}: answers each request on its reply_to "
            "address with the result or an error envelope, then acks. Requests past their "
            "x-rpc-deadline are dropped.",
            "messages": self.refs(queue, request),
            "reply": answer,
            "bindings": {
                "amqp": {"ack": True, "cc": [procedure], "bindingVersion": BINDING_VERSION}
            },
        }
        if summary:
            serve["summary"] = summary
        self.operations[self.new_id(self.operations, f"serve.{name}")] = serve
        if exchange is not None:
            self.operations[self.new_id(self.operations, f"call.{name}")] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{exchange}"},
                "title": f"call {procedure}",
                "summary": summary or f"Call {procedure}.",
                "description": f"What a caller publishes: routing key {procedure!r}, "
                f"reply_to {DIRECT_REPLY_TO!r}, a correlation_id, transient, with an "
                "expiration and x-rpc-deadline of its timeout.",
                "messages": self.refs(exchange, request),
                "reply": answer,
                "bindings": {
                    "amqp": {
                        "cc": [procedure],
                        "deliveryMode": 1,
                        "mandatory": True,
                        "bindingVersion": BINDING_VERSION,
                    }
                },
            }
