"""The message builder stamps every outgoing message the same way."""

from __future__ import annotations

import datetime

import pytest
from pydantic import BaseModel

from burrowmq.exceptions import EncodeError
from burrowmq.framework.builder import MessageBuilder, new_id
from burrowmq.framework.codec import JSON, OCTET_STREAM
from burrowmq.framework.transport import Properties

pytestmark = pytest.mark.unit


class Order(BaseModel):
    """A payload."""

    id: int


class TestMessage:
    """What ``publish`` sends."""

    def test_stamps(self) -> None:
        """A message gets an id, a timestamp, its content type, the app id, delivery mode 2."""
        body, props = MessageBuilder(app_id="billing").message(Order(id=1))
        assert body == b'{"id":1}'
        assert props.content_type == JSON
        assert props.message_id and props.timestamp is not None
        assert props.timestamp.tzinfo is datetime.UTC
        assert (props.app_id, props.delivery_mode) == ("billing", 2)

    def test_options(self) -> None:
        """Given ids, headers, expiry (in ms, as AMQP carries it) and a content type are kept."""
        _, props = MessageBuilder().message(
            b"\x00",
            headers={"h": 1},
            persistent=False,
            message_id="m1",
            correlation_id="c1",
            reply_to="r",
            expiration=1.5,
            priority=3,
            content_type="application/x-thing",
        )
        assert (props.message_id, props.correlation_id, props.reply_to) == ("m1", "c1", "r")
        assert (props.delivery_mode, props.expiration, props.priority) == (1, "1500", 3)
        assert props.content_type == "application/x-thing"
        assert props.headers == {"h": 1}

    def test_ids_are_unique(self) -> None:
        """Ids never repeat in a process."""
        assert len({new_id() for _ in range(10_000)}) == 10_000

    def test_unencodable_body_is_an_encode_error(self) -> None:
        """A body that is not JSON-able raises EncodeError naming its type."""
        with pytest.raises(EncodeError, match="object"):
            MessageBuilder().message(object())


class TestRpc:
    """Requests and replies."""

    def test_request(self) -> None:
        """A request is transient, its message id is its correlation id, it expires with its caller."""
        body, props = MessageBuilder(app_id="shop").request(
            {"sku": "tea"}, correlation_id="c9", expires_in=0.0001, headers={"x-rpc-deadline": 5}
        )
        assert body == b'{"sku":"tea"}'
        assert (props.message_id, props.correlation_id) == ("c9", "c9")
        assert (props.delivery_mode, props.expiration, props.app_id) == (1, "1", "shop")
        assert props.headers == {"x-rpc-deadline": 5}

    def test_reply(self) -> None:
        """A reply carries the request's correlation id and its kind in ``type``."""
        props = MessageBuilder(app_id="pricing").reply(
            b"1", JSON, correlation_id="c9", kind="burrowmq.rpc.reply"
        )
        assert (props.correlation_id, props.type, props.delivery_mode) == (
            "c9",
            "burrowmq.rpc.reply",
            1,
        )
        assert props.app_id == "pricing" and props.timestamp is not None


class TestCopy:
    """Copies of a delivery for delay and dead-letter queues."""

    def test_copy_keeps_the_publishers_properties_but_headers_and_expiry(self) -> None:
        """A copy keeps ids, type and mode; takes the new headers; drops the expiration."""
        original = Properties(
            content_type=OCTET_STREAM,
            headers={"old": 1},
            delivery_mode=1,
            message_id="m1",
            correlation_id="c1",
            expiration="5000",
            app_id="publisher",
            priority=2,
        )
        copy = MessageBuilder(app_id="consumer").copy(original, headers={"new": 2})
        assert copy.headers == {"new": 2}
        assert copy.expiration is None
        assert (copy.message_id, copy.correlation_id, copy.app_id) == ("m1", "c1", "publisher")
        assert (copy.delivery_mode, copy.priority, copy.content_type) == (1, 2, OCTET_STREAM)
        assert original.headers == {"old": 1}, "the original is untouched"

    def test_copy_can_be_made_persistent(self) -> None:
        """A dead-letter copy is persistent whatever the original was."""
        copy = MessageBuilder().copy(Properties(delivery_mode=1), headers={}, persistent=True)
        assert copy.delivery_mode == 2
