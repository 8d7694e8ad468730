"""Contract: what a publish refuses (headers, bodies), refused the same way on both transports.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import datetime
import decimal
import math
from typing import Any

import pytest
from pydantic import BaseModel

from burrowmq import DecodeError, EncodeError, PublishError
from burrowmq.framework.builder import MessageBuilder
from tests.contract.conftest import Backend

pytestmark = pytest.mark.contract

UNCARRIED = [
    ({"raw": b"bytes"}, "header 'raw' holds a bytes, which AMQP headers cannot carry"),
    ({"ids": (1, 2)}, "header 'ids' holds a tuple, which AMQP headers cannot carry"),
    ({"deep": {"list": [1, {3}]}}, "header 'deep' holds a set"),
    ({"big": 2**64}, "header 'big' holds the int 18446744073709551616, outside the 64-bit range"),
    ({"k" * 129: 1}, f"header name {'k' * 40!r} is not a string of at most 128 bytes"),
    ({"dec": decimal.Decimal("NaN")}, "header 'dec' holds the Decimal NaN"),
]


class TestUnencodableHeaders:
    """A header AMQP cannot carry fails with the same PublishError on both transports."""

    @pytest.mark.parametrize(
        ("headers", "words"),
        UNCARRIED,
        ids=["bytes", "tuple", "nested-set", "int-overflow", "long-name", "decimal-nan"],
    )
    async def test_app_publish(self, backend: Backend, headers: dict[str, Any], words: str) -> None:
        """App.publish refuses the header, naming it, before anything is sent."""
        queue = backend.names.queue("hdr")
        await backend.transport.declare_queue(queue, arguments={"x-queue-type": "quorum"})
        app = backend.app()
        await app.start()
        with pytest.raises(PublishError) as caught:
            await app.publish("", {"n": 1}, routing_key=queue, headers=headers)
        assert str(caught.value).startswith(f"cannot publish to exchange '': {words}")
        assert (caught.value.exchange, caught.value.routing_key) == ("", queue)
        # Nothing was sent, and the connection serves the next publish.
        await app.publish(
            "", {"n": 2}, routing_key=queue, headers={"at": datetime.datetime.now(datetime.UTC)}
        )
        [delivery] = await backend.take(queue, 1)
        assert delivery.body == b'{"n":2}'

    async def test_transport_publish(self, backend: Backend) -> None:
        """The transport itself refuses it with the same words (dead-letter copies go this way)."""
        queue = backend.names.queue("hdr")
        await backend.transport.declare_queue(queue, arguments={"x-queue-type": "quorum"})
        body, props = MessageBuilder().message(b"x", headers={"raw": b"bytes"})
        with pytest.raises(
            PublishError, match=r"^cannot publish to exchange '': header 'raw' holds a bytes"
        ):
            await backend.transport.publish("", queue, body, props)


class TestHeaderValues:
    """What a header carries arrives as it was sent, on both transports."""

    async def test_floats_arrive_exactly(self, backend: Backend) -> None:
        """Floats travel as 64-bit doubles: 0.1 arrives as 0.1, a huge one as itself."""
        queue = backend.names.queue("floats")
        await backend.transport.declare_queue(queue, arguments={"x-queue-type": "quorum"})
        app = backend.app()
        await app.start()
        await app.publish(
            "", b"x", routing_key=queue, headers={"f": 0.1, "big": 1e300, "list": [2.5e-300]}
        )
        [delivery] = await backend.take(queue, 1)
        headers = delivery.properties.headers
        assert (headers["f"], headers["big"], headers["list"]) == (0.1, 1e300, [2.5e-300])


class Reading(BaseModel):
    """A body whose float may be NaN or infinite."""

    sensor: str
    value: float


class Opaque:
    """A type pydantic cannot serialise."""


UNENCODABLE = [
    ({"sensor": "s", "values": [1.0, math.nan]}, "the float nan at values.1"),
    (Reading(sensor="s", value=math.inf), "the float inf at value"),
    ({"payload": Opaque()}, "a value of type dict as JSON: Unable to serialize unknown type"),
]


class TestUnencodableBodies:
    """A body JSON cannot carry fails with the same EncodeError on both transports."""

    @pytest.mark.parametrize(
        ("body", "words"), UNENCODABLE, ids=["nan-in-list", "inf-in-model", "opaque"]
    )
    async def test_app_publish(self, backend: Backend, body: Any, words: str) -> None:
        """App.publish raises EncodeError (never DecodeError) naming the value, sending nothing."""
        queue = backend.names.queue("body")
        await backend.transport.declare_queue(queue, arguments={"x-queue-type": "quorum"})
        app = backend.app()
        await app.start()
        with pytest.raises(EncodeError) as caught:
            await app.publish("", body, routing_key=queue)
        assert not isinstance(caught.value, DecodeError)
        assert str(caught.value).startswith(f"cannot encode {words}")
        await app.publish("", {"n": 2}, routing_key=queue)
        [delivery] = await backend.take(queue, 1)
        assert delivery.body == b'{"n":2}'

    async def test_rpc_call(self, backend: Backend) -> None:
        """An RPC request with a NaN fails at the caller with EncodeError, before any lookup."""
        app = backend.app()
        await app.start()
        with pytest.raises(EncodeError, match=r"^cannot encode the float nan at x as JSON"):
            await app.call(f"{backend.names.prefix}.quote", {"x": math.nan}, timeout=5.0)
