"""Channels: the exchanges and queues of a document, and the messages they carry.

Each channel has an id safe for AsyncAPI (``exchange-<name>``, ``queue-<name>``, dots
and other characters as ``_``); a message is stored once in ``components/messages``
and listed by reference in every channel it travels through.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from burrowmq.asyncapi.bindings import exchange_binding, queue_binding
from burrowmq.asyncapi.schemas import Schemas, content_type_of
from burrowmq.framework.urls import MEMORY_SCHEME, vhost_of
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO
from burrowmq.topology.model import Exchange, Queue, Topology

__all__ = ["REPLY_CHANNEL", "Channels", "ident", "summary_of"]

REPLY_CHANNEL = "rpc-reply-to"
_INSTANCE = "{instance}"
_ID = re.compile(r"[^A-Za-z0-9_-]")


def ident(text: str) -> str:
    """``text`` as an AsyncAPI id (letters, digits, ``_`` and ``-``)."""
    return _ID.sub("_", text) or "_"


def summary_of(obj: object) -> str | None:
    """The first line of ``obj``'s docstring, if it has one."""
    doc = inspect.getdoc(obj)
    return doc.strip().splitlines()[0] if doc else None


class Channels:
    """The channels, messages and schemas of one document under construction.

    Args:
        urls: the App's URLs (the first AMQP one names the default vhost).
        instance_id: the id of the App instance whose per-instance queues are named.
        topology: every exchange, queue and binding of the App.
    """

    def __init__(self, urls: tuple[str, ...], instance_id: str, topology: Topology) -> None:
        amqp = [u for u in urls if not u.startswith(f"{MEMORY_SCHEME}:")]
        self.vhost = vhost_of(amqp[0]) if amqp else "/"
        self.instance_id = instance_id
        self.topology = topology
        self.schemas = Schemas()
        self.channels: dict[str, dict[str, Any]] = {}
        self.channel_of: dict[tuple[str, str], str] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}

    # -- channels ------------------------------------------------------------------

    def new_id(self, taken: dict[str, Any], wanted: str) -> str:
        base = ident(wanted)
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        return candidate

    def address(self, name: str) -> str:
        return name.replace(self.instance_id, _INSTANCE)

    def _channel(self, kind: str, name: str, body: dict[str, Any]) -> str:
        address = self.address(name)
        ident = self.new_id(self.channels, f"{kind}-{address.replace(_INSTANCE, 'instance')}")
        channel: dict[str, Any] = {"address": address, "title": f"{kind} {address}"}
        channel.update(body)
        channel["messages"] = {}
        if _INSTANCE in address:
            channel["parameters"] = {
                "instance": {
                    "description": "the id of one running instance of the service; each "
                    "has its own exclusive queue, deleted with its connection"
                }
            }
        self.channels[ident] = channel
        self.channel_of[(kind, name)] = ident
        return ident

    def exchange_channel(self, exchange: Exchange) -> str:
        notes = [f"The {exchange.type} exchange {exchange.name!r}."]
        if exchange.internal:
            notes.append("Internal: it takes messages from other exchanges only.")
        if "alternate-exchange" in exchange.arguments:
            notes.append(f"Unroutable messages go to {exchange.arguments['alternate-exchange']!r}.")
        body: dict[str, Any] = {
            "description": " ".join(notes),
            "bindings": exchange_binding(exchange, self.vhost),
        }
        if exchange.arguments:
            body["x-amqp-arguments"] = dict(exchange.arguments)
        return self._channel("exchange", exchange.name, body)

    def queue_channel(self, queue: Queue) -> str:
        address = self.address(queue.name)
        notes = [f"The {queue.queue_type} queue {address!r}."]
        if "x-message-ttl" in queue.arguments and "x-dead-letter-routing-key" in queue.arguments:
            seconds = int(queue.arguments["x-message-ttl"]) // 1000
            back = queue.arguments["x-dead-letter-routing-key"]
            notes.append(f"A retry waits here {seconds} s, then expires back into {back!r}.")
        sources = [
            f"{b.source!r} ({b.routing_key!r})"
            for b in self.topology.bindings
            if b.destination == queue.name and b.destination_type == "queue"
        ]
        if sources:
            notes.append("Bound to " + ", ".join(sources) + ".")
        body: dict[str, Any] = {
            "description": " ".join(notes),
            "bindings": queue_binding(queue, self.vhost, name=address),
        }
        if queue.arguments:
            body["x-amqp-arguments"] = dict(queue.arguments)
        return self._channel("queue", queue.name, body)

    def queue_id(self, name: str) -> str:
        found = self.channel_of.get(("queue", name))
        return found if found is not None else self.queue_channel(Queue(name=name))

    def reply_channel(self) -> str:
        if REPLY_CHANNEL not in self.channels:
            pseudo = Queue(name=DIRECT_REPLY_TO, durable=False, exclusive=True, auto_delete=True)
            self.channels[REPLY_CHANNEL] = {
                "address": DIRECT_REPLY_TO,
                "title": "RPC replies (direct reply-to)",
                "description": "RabbitMQ's direct reply-to pseudo-queue of the caller. A "
                "request's reply_to names it (amq.rabbitmq.reply-to.<...>); the server "
                "publishes the reply to the default exchange with that routing key and "
                "the request's correlation_id. The message type says the outcome.",
                "messages": {},
                "bindings": queue_binding(pseudo, self.vhost),
            }
        return REPLY_CHANNEL

    # -- messages ------------------------------------------------------------------

    def message(self, key: str, body: dict[str, Any], *channels: str) -> str:
        """Store the message ``key`` and list it in ``channels``; returns its key."""
        key = ident(key)
        self.messages.setdefault(key, {"name": key, **body})
        for channel in channels:
            self.channels[channel].setdefault("messages", {})[key] = {
                "$ref": f"#/components/messages/{key}"
            }
        return key

    def payload_message(
        self, annotation: Any, *, mode: str = "validation", title: str, summary: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": title,
            "contentType": content_type_of(annotation),
            "payload": self.schemas.payload(
                annotation, "serialization" if mode != "validation" else "validation"
            ),
        }
        if summary:
            body["summary"] = summary
        return body

    @staticmethod
    def refs(channel: str, *keys: str) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{key}"} for key in keys]
