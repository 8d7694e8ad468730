"""Tests for burrowmq.asyncapi.document: the AsyncAPI 3.0 document of an App (no broker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from burrowmq import App
from burrowmq.asyncapi import build_document, dump_document
from examples import shop
from tests.asyncapi import apps

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The document of the test App on examples/topology.yaml."""
    return build_document(apps.app, version="2.1.0")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and set(node) == {"$ref"}:  # a channel's message: follow it
        return _resolve(doc, node["$ref"])
    return node


def _channel(doc: dict[str, Any], address: str) -> dict[str, Any]:
    return next(c for c in doc["channels"].values() if c["address"] == address)


class TestStructure:
    """The document's frame, channels and operations."""

    def test_header(self, doc: dict[str, Any]) -> None:
        """asyncapi 3.0.0, the App's name as title and --version as version."""
        assert doc["asyncapi"] == "3.0.0"
        assert doc["info"]["title"] == "reports"
        assert doc["info"]["version"] == "2.1.0"
        assert build_document(shop.app)["info"]["version"] == "0.0.0"

    def test_every_exchange_and_queue_is_a_channel(self, doc: dict[str, Any]) -> None:
        """Each exchange is a routingKey channel, each queue a queue channel, by address."""
        topology = apps.app.topology()
        # An exchange and a queue may share a name (orders.unrouted): key by both.
        addresses = {
            (c["bindings"]["amqp"]["is"], c["address"]): c["bindings"]["amqp"]
            for c in doc["channels"].values()
        }
        for exchange in topology.exchanges:
            binding = addresses["routingKey", exchange.name]
            assert binding["exchange"]["name"] == exchange.name
            assert binding["exchange"]["type"] == exchange.type
            assert binding["bindingVersion"] == "0.3.0"
        for queue in topology.queues:
            name = queue.name.replace(apps.app.instance_id, "{instance}")
            assert set(addresses["queue", name]["queue"]) == {
                "name",
                "durable",
                "exclusive",
                "autoDelete",
                "vhost",
            }
            assert addresses["queue", name]["queue"]["vhost"] == "shop"

    def test_a_receive_operation_per_handler_with_its_keys(self, doc: dict[str, Any]) -> None:
        """A topic handler receives from its queue; its patterns are the binding's cc."""
        operation = doc["operations"]["logs"]
        assert operation["action"] == "receive"
        assert _resolve(doc, operation["channel"]["$ref"])["address"] == "logs.all"
        assert operation["bindings"]["amqp"]["cc"] == ["logs.*.#"]
        headers = doc["operations"]["render"]["x-amqp-bindings"][0]
        assert headers["arguments"] == {"x-match": "any", "archive": True}

    def test_per_instance_queues_are_addressed_with_a_parameter(self, doc: dict[str, Any]) -> None:
        """The instance id never appears; an {instance} parameter takes its place."""
        assert apps.app.instance_id not in json.dumps(doc)
        channel = _channel(doc, "cache.invalidate.invalidate.{instance}")
        assert "instance" in channel["parameters"]
        assert channel["bindings"]["amqp"]["queue"]["exclusive"] is True

    def test_operation_messages_belong_to_their_channel(self, doc: dict[str, Any]) -> None:
        """Each operation's messages are listed in its channel (as AsyncAPI 3 requires)."""
        for operation in doc["operations"].values():
            channel = operation["channel"]["$ref"]
            for message in operation["messages"]:
                assert message["$ref"].startswith(channel + "/messages/")
                _resolve(doc, message["$ref"])


class TestPayloads:
    """Payload schemas follow the handler's annotation, as burrowmq encodes it."""

    def test_content_types(self, doc: dict[str, Any]) -> None:
        """bytes are binary, str text, models JSON."""
        messages = doc["components"]["messages"]
        assert messages["render_message"]["contentType"] == "application/octet-stream"
        assert messages["render_message"]["payload"] == {"type": "string", "format": "binary"}
        assert messages["logs_message"]["contentType"] == "text/plain; charset=utf-8"
        assert messages["report_message"]["contentType"] == "application/json"

    def test_every_ref_resolves_and_defs_are_lifted(self, doc: dict[str, Any]) -> None:
        """No $defs remain; every $ref points into the document; nested models are components."""
        text = json.dumps(doc)
        assert "$defs" not in text
        for ref in _refs(doc):
            assert ref.startswith("#/"), ref
            _resolve(doc, ref)
        schemas = doc["components"]["schemas"]
        assert {"ReportRequest", "Line", "Quote", "QuoteRequest", "ErrorEnvelope"} <= set(schemas)
        batch = doc["components"]["messages"]["batch_message"]["payload"]
        assert batch == {"items": {"$ref": "#/components/schemas/Line"}, "type": "array"}

    def test_tuples_use_the_array_form_of_items(self, doc: dict[str, Any]) -> None:
        """pydantic's prefixItems becomes items: [...] (AsyncAPI schemas are draft 07)."""
        values = doc["components"]["schemas"]["Line"]["properties"]["values"]
        assert "prefixItems" not in values
        assert [item["type"] for item in values["items"]] == ["integer", "number"]


class TestRpc:
    """A procedure is served (receive) and called (send), both with the reply."""

    def test_serve_and_call_with_reply_and_error(self, doc: dict[str, Any]) -> None:
        """The reply goes to direct reply-to, as the result or the error envelope."""
        serve = doc["operations"]["serve_pricing_quote"]
        call = doc["operations"]["call_pricing_quote"]
        assert serve["action"] == "receive" and call["action"] == "send"
        assert _resolve(doc, call["channel"]["$ref"])["address"] == "burrowmq.rpc"
        assert call["bindings"]["amqp"]["cc"] == ["pricing.quote"]
        for operation in (serve, call):
            reply = operation["reply"]
            assert _resolve(doc, reply["channel"]["$ref"])["address"] == "amq.rabbitmq.reply-to"
            types = [
                _resolve(doc, m["$ref"])["bindings"]["amqp"]["messageType"]
                for m in reply["messages"]
            ]
            assert types == ["burrowmq.rpc.reply", "burrowmq.rpc.error"]

    def test_replies_are_described_as_serialised(self, doc: dict[str, Any]) -> None:
        """A Decimal result is a string on the wire: the reply schema says so."""
        reply = doc["components"]["messages"]["pricing_convert_reply"]["payload"]
        assert reply["type"] == "string"


class TestFailurePaths:
    """Dead letters and retries are send operations with burrowmq's headers."""

    def test_dead_letters(self, doc: dict[str, Any]) -> None:
        """The copy goes to <queue>.dlx, is held in <queue>.dlq, with x-exception-*."""
        operation = doc["operations"]["report_dead_letter"]
        assert operation["action"] == "send"
        assert _resolve(doc, operation["channel"]["$ref"])["address"] == "reports.generate.dlx"
        message = _resolve(doc, operation["messages"][0]["$ref"])
        headers = _resolve(doc, message["headers"]["$ref"])["properties"]
        assert {"x-exception-type", "x-exception-message", "x-original-queue"} <= set(headers)
        assert "report_dead_letter" in _channel(doc, "reports.generate.dlq")["messages"]

    def test_retries_through_the_delay_ladder(self, doc: dict[str, Any]) -> None:
        """A route whose retries wait on the broker has one send into the ladder, with x-retry-count."""
        retries = sorted(k for k in doc["operations"] if k.startswith("report_retry"))
        assert retries == ["report_retry"]
        operation = doc["operations"]["report_retry"]
        channel = _resolve(doc, operation["channel"]["$ref"])
        assert channel["address"] == "burrowmq.delay.deliver"
        assert operation["bindings"]["amqp"]["cc"] == ["*." * 28 + "reports.generate"]
        assert _channel(doc, "burrowmq.delay.27")
        assert "RetryHeaders" in doc["components"]["schemas"]

    def test_rpc_routes_have_no_dead_letters(self, doc: dict[str, Any]) -> None:
        """An RPC failure is answered, never dead-lettered."""
        assert not any("pricing" in k and "dead_letter" in k for k in doc["operations"])


class TestServers:
    """Servers come from the App's URLs, without credentials."""

    def test_no_secret_and_the_url_parts(self, doc: dict[str, Any]) -> None:
        """Host, protocol and vhost are there; the password is nowhere, in either format."""
        for text in (dump_document(doc, "yaml"), dump_document(doc, "json")):
            assert apps.PASSWORD not in text
            assert "bob" not in text
        assert doc["servers"]["node1"]["host"] == "rabbit-1:5672"
        assert doc["servers"]["node2"]["protocol"] == "amqps"
        assert doc["servers"]["node2"]["host"] == "rabbit-2:5671"
        assert doc["servers"]["node1"]["pathname"] == "/shop"

    def test_memory_apps_have_no_servers(self) -> None:
        """An App on memory:// names no server."""
        assert "servers" not in build_document(App([shop.router], url="memory://"))
