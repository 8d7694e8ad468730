"""Contract: bodies decoded by content type and encoding; publishing encodes the same way.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``). "Raw"
messages come from a plain aio-pika publisher on RabbitMQ (as a Spring or MassTransit
service would send them) and from the memory transport's own publish on memory: neither
goes through burrowmq's message builder.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from typing import Any

import aio_pika
import msgpack
import pytest
from pydantic import BaseModel

from burrowmq import Message, Retry, Router
from burrowmq.framework.transport import Properties
from tests.contract.conftest import Backend
from tests.contract.test_routing import Seen

pytestmark = pytest.mark.contract


class Order(BaseModel):
    order_id: str
    total: float


async def raw_publish(
    backend: Backend,
    queue: str,
    body: bytes,
    *,
    content_type: str | None = "application/json",
    content_encoding: str | None = None,
) -> None:
    """Publish ``body`` to ``queue`` with the given properties, bypassing burrowmq."""
    if backend.kind == "amqp":
        connection = await aio_pika.connect(backend.url)
        try:
            channel = await connection.channel()
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body, content_type=content_type, content_encoding=content_encoding
                ),
                routing_key=queue,
            )
        finally:
            await connection.close()
        return
    await backend.transport.publish(
        "",
        queue,
        body,
        Properties(content_type=content_type, content_encoding=content_encoding),
        mandatory=True,
    )


async def started(backend: Backend, router: Router, **options: Any) -> Any:
    app = backend.app(router, **options)
    await app.start()
    return app


class TestCompressedBodies:
    """A ``content_encoding`` is undone before the body is decoded."""

    async def test_gzip_json_from_a_raw_publisher_is_handled(self, backend: Backend) -> None:
        """A gzip-compressed JSON body (as Spring sends it) reaches the handler decoded."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order, message: Message) -> None:
            seen.add((order, message.content_type))

        await started(backend, router)
        body = gzip.compress(json.dumps({"order_id": "a1", "total": 9.5}).encode())
        await raw_publish(backend, queue, body, content_encoding="gzip")
        assert await seen.wait(1) == [(Order(order_id="a1", total=9.5), "application/json")]

    async def test_deflate_and_charset_encodings(self, backend: Backend) -> None:
        """``deflate`` (zlib or raw) is inflated; ``utf-8`` (kombu's label) is no compression."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order) -> None:
            seen.add(order.order_id)

        await started(backend, router)
        data = json.dumps({"order_id": "z", "total": 1}).encode()
        raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        await raw_publish(backend, queue, zlib.compress(data), content_encoding="deflate")
        await raw_publish(
            backend, queue, raw.compress(data) + raw.flush(), content_encoding="deflate"
        )
        await raw_publish(backend, queue, data, content_encoding="utf-8")
        assert await seen.wait(3) == ["z", "z", "z"]

    async def test_publish_compressed_round_trip(self, backend: Backend) -> None:
        """``publish(..., compress="gzip")`` sets content_encoding; the consumer inflates it."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order, message: Message) -> None:
            seen.add(order)

        app = await started(backend, router)
        await app.publish("", Order(order_id="g", total=2), routing_key=queue, compress="gzip")
        await app.publish("", Order(order_id="d", total=3), routing_key=queue, compress="deflate")
        assert [o.order_id for o in await seen.wait(2)] == ["g", "d"]

    async def test_decompression_bomb_is_dead_lettered(self, backend: Backend) -> None:
        """A body that inflates past max_decompressed_size is dead-lettered with the limit named."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=3))
        async def take(body: bytes) -> None:
            seen.add(body)

        await started(backend, router, max_decompressed_size=1024 * 1024)
        bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))  # 8 MiB of zeros in ~8 KB
        assert len(bomb) < 64 * 1024
        await raw_publish(backend, queue, bomb, content_encoding="gzip")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        headers = dead.properties.headers
        assert headers["x-exception-type"] == "DecodeError"
        assert "1048576 bytes" in headers["x-exception-message"]
        assert headers["x-retry-count"] == 0
        assert dead.body == bomb  # the dead letter keeps the body as it came
        assert dead.properties.content_encoding == "gzip"
        assert seen.items == []

    async def test_corrupt_gzip_is_dead_lettered(self, backend: Backend) -> None:
        """A body that is not the gzip its encoding says is dead-lettered, not retried."""
        queue, router = backend.names.queue(), Router()

        @router.consume(queue, queue_options={})
        async def take(order: Order) -> None:
            raise AssertionError("never called")

        await started(backend, router)
        await raw_publish(backend, queue, b"not gzip", content_encoding="gzip")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        assert "not valid gzip" in dead.properties.headers["x-exception-message"]


class TestContentTypes:
    """The content type chooses the codec; an unknown one is dead-lettered."""

    async def test_msgpack_round_trip(self, backend: Backend) -> None:
        """``content_type="application/msgpack"`` encodes with msgpack and decodes back."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order, message: Message) -> None:
            seen.add((order, message.content_type, msgpack.unpackb(message.body)))

        app = await started(backend, router)
        await app.publish(
            "",
            Order(order_id="m", total=4.25),
            routing_key=queue,
            content_type="application/msgpack",
        )
        [(order, content_type, raw)] = await seen.wait(1)
        assert order == Order(order_id="m", total=4.25)
        assert content_type == "application/msgpack"
        assert raw == {"order_id": "m", "total": 4.25}

    async def test_raw_msgpack_gzip_and_x_msgpack(self, backend: Backend) -> None:
        """Raw ``application/x-msgpack`` bodies decode, compressed or not."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order) -> None:
            seen.add(order.order_id)

        await started(backend, router)
        data = msgpack.packb({"order_id": "x", "total": 1.0})
        await raw_publish(backend, queue, data, content_type="application/x-msgpack")
        await raw_publish(
            backend,
            queue,
            gzip.compress(data),
            content_type="application/msgpack",
            content_encoding="gzip",
        )
        assert await seen.wait(2) == ["x", "x"]

    async def test_vendor_json_is_json(self, backend: Backend) -> None:
        """A ``+json`` type (MassTransit's) and JSON with a charset decode as JSON."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order) -> None:
            seen.add(order.order_id)

        await started(backend, router)
        data = json.dumps({"order_id": "v", "total": 1}).encode()
        await raw_publish(backend, queue, data, content_type="application/vnd.masstransit+json")
        await raw_publish(backend, queue, data, content_type="application/json; charset=utf-8")
        assert await seen.wait(2) == ["v", "v"]

    async def test_unknown_content_type_is_dead_lettered_naming_it(self, backend: Backend) -> None:
        """A content type no codec handles is dead-lettered at once, the reason naming it."""
        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=5))
        async def take(order: Order) -> None:
            seen.add(order)

        await started(backend, router)
        await raw_publish(backend, queue, b"<order/>", content_type="application/xml")
        [dead] = await backend.take(f"{queue}.dlq", 1)
        headers = dead.properties.headers
        assert headers["x-exception-type"] == "DecodeError"
        assert "'application/xml'" in headers["x-exception-message"]
        assert headers["x-retry-count"] == 0
        assert seen.items == []

    async def test_app_codec_registry(self, backend: Backend) -> None:
        """An App's own codec handles its content type, for publishing and consuming."""

        class Csv:
            content_types = ("text/csv",)

            def encode(self, value: Any) -> bytes:
                return ",".join(f"{k}={v}" for k, v in value.model_dump().items()).encode()

            def decode(self, body: bytes) -> Any:
                return dict(pair.split("=") for pair in body.decode().split(","))

        queue, router, seen = backend.names.queue(), Router(), Seen()

        @router.consume(queue, queue_options={})
        async def take(order: Order, message: Message) -> None:
            seen.add((order, message.body))

        app = await started(backend, router, codecs=[Csv()])
        await app.publish(
            "", Order(order_id="c", total=5), routing_key=queue, content_type="text/csv"
        )
        assert await seen.wait(1) == [(Order(order_id="c", total=5), b"order_id=c,total=5.0")]


class Quote(BaseModel):
    sku: str
    price: float


class TestRpc:
    """RPC requests and replies travel in the codec and compression the caller chose."""

    async def test_msgpack_gzip_call_is_answered_in_kind(self, backend: Backend) -> None:
        """A msgpack, gzip request is decoded by the server, which replies msgpack, gzip."""
        name = f"svc{uuid.uuid4().hex[:8]}"
        backend.names.add_queue(f"rpc.{name}")
        router, seen = Router(), Seen()

        @router.rpc(f"{name}.quote")
        async def quote(order: Order, message: Message) -> Quote:
            seen.add(message.content_type)
            return Quote(sku=order.order_id, price=order.total * 2)

        server, client = backend.app(router), backend.app()
        await server.start()
        await client.start()
        plain = await client.call(
            f"{name}.quote",
            Order(order_id="tea", total=2),
            content_type="application/msgpack",
            compress="gzip",
            timeout=10,
        )
        typed = await client.call(
            f"{name}.quote",
            Order(order_id="tea", total=2),
            returns=Quote,
            content_type="application/msgpack",
            timeout=10,
        )
        assert plain == {"sku": "tea", "price": 4.0}
        assert typed == Quote(sku="tea", price=4.0)
        assert seen.items == ["application/msgpack", "application/msgpack"]
