"""The lean receive path reads and decodes frames exactly as aiormq's reader and pamqp do."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pamqp.frame
import pytest
from aiormq.connection import FrameReceiver
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from burrowmq.amqp import receive
from burrowmq.amqp.frames import install, undecodable_of

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]
install()

PROPERTIES = spec.Basic.Properties(
    content_type="application/json",
    headers={"x-retry-count": 2, "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
    delivery_mode=2,
    correlation_id="c-1",
    message_id="m-1",
    timestamp=datetime(2026, 12, 3, 7, 0, tzinfo=UTC),
)

FRAMES: list[Any] = [
    spec.Basic.Deliver("ctag-1", 1, False, "", "orders"),
    spec.Basic.Deliver("amq.ctag-Zoë", 2**62 + 5, True, "billing.events", "order.eu.placed"),
    spec.Basic.Deliver("t", 7, False, "x" * 127, "k" * 255),
    spec.Basic.Ack(17, False),
    spec.Basic.Ack(2**40, True),
    spec.Basic.Nack(3, True, False),
    spec.Basic.ConsumeOk("ctag-1"),
    spec.Basic.Return(312, "NO_ROUTE", "orders", "nowhere"),
    spec.Channel.Close(406, "PRECONDITION_FAILED - inequivalent arg 'durable'", 50, 10),
    ContentHeader(0, 11, PROPERTIES),
    ContentHeader(0, 0, spec.Basic.Properties()),
    ContentBody(b'{"id": 1}'),
    Heartbeat(),
]


def _wire(frames: list[Any], channel: int = 3) -> bytes:
    return b"".join(
        pamqp.frame.marshal(f, 0 if isinstance(f, Heartbeat) else channel) for f in frames
    )


def _receiver(data: bytes, *, eof: bool = True) -> FrameReceiver:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    receiver = FrameReceiver(reader)
    receiver.started = True  # past the protocol handshake
    return receiver


def _state(frame: Any) -> tuple[Any, ...]:
    """A frame's type and every value it holds, for comparison."""
    if isinstance(frame, ContentHeader):
        props = frame.properties
        return (
            type(frame),
            frame.body_size,
            frame.class_id,
            frame.weight,
            tuple((s, getattr(props, s)) for s in props.__slots__),
            undecodable_of(frame),
        )
    if isinstance(frame, ContentBody):
        return (type(frame), frame.value)
    slots = getattr(frame, "__slots__", ())
    return (type(frame), tuple((s, getattr(frame, s)) for s in slots))


async def _read_all(get: Any, data: bytes) -> list[Any]:
    receiver = _receiver(data)
    out = []
    while True:
        try:
            weight, channel, frame = await get(receiver)
        except StopAsyncIteration:
            return out
        out.append((weight, channel, _state(frame)))


class TestSameFrames:
    async def test_every_frame_is_what_aiormq_and_pamqp_make(self) -> None:
        data = _wire(FRAMES)
        ours = await _read_all(receive.get_frame, data)
        theirs = await _read_all(receive._ORIGINAL, data)
        assert len(ours) == len(FRAMES)
        assert ours == theirs

    async def test_hot_frames_are_decoded_directly(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A delivery, its header and body, a confirm and a heartbeat never reach pamqp's
        generic decoder (what they decode to is what aiormq's reader makes of them)."""
        data = _wire(
            [
                spec.Basic.Deliver("ctag-1", 1, True, "orders", "order.placed"),
                ContentHeader(0, 2, PROPERTIES),
                ContentBody(b"{}"),
                spec.Basic.Ack(9, True),
                Heartbeat(),
            ]
        )
        theirs = await _read_all(receive._ORIGINAL, data)

        def refuse(*args: Any) -> Any:
            raise AssertionError("pamqp decoded a frame")

        for name in ("unmarshal", "_unmarshal_method_frame", "_unmarshal_header_frame"):
            monkeypatch.setattr(pamqp.frame, name, refuse)
        assert await _read_all(receive.get_frame, data) == theirs


async def _outcome(get: Any, data: bytes) -> tuple[Any, Any]:
    """What reading ``data`` with ``get`` gives: the frame's state, or the error and its
    text (object addresses left out)."""
    try:
        _, _, frame = await get(_receiver(data))
    except Exception as exc:  # compared by the tests
        return type(exc), re.sub(r" at 0x[0-9a-f]+", "", str(exc))
    return "frame", _state(frame)


def _header_frame(flags: int, values: bytes, body_size: int = 2) -> bytes:
    payload = (60).to_bytes(2, "big") + b"\x00\x00" + body_size.to_bytes(8, "big")
    payload += flags.to_bytes(2, "big") + values
    return b"\x02\x00\x03" + len(payload).to_bytes(4, "big") + payload + b"\xce"


class TestOddHeaders:
    """Content headers the direct decoder leaves to pamqp end as they did."""

    @pytest.mark.parametrize(
        "data",
        [
            _header_frame(0x0080, b"\x02\xff\xfe"),  # a message id that is not UTF-8
            _header_frame(0x1000, b"\x05"),  # delivery mode 5: decoded, not refused
            _header_frame(0x0040, (2**62).to_bytes(8, "big")),  # a timestamp past 9999
            _header_frame(0x0004, b"\x01c"),  # a cluster id, which Basic.Properties refuses
            _header_frame(0x0080, b"\x05ab"),  # a message id cut short
            _header_frame(0x0080, b"\x01ab"),  # a byte more than the properties take
            _header_frame(0x2000 | 0x0080, b"\x00\x00\x00\x00\x01m"),  # empty headers
        ],
    )
    async def test_as_aiormq_and_pamqp_read_it(self, data: bytes) -> None:
        outcomes = [
            await _outcome(receive.get_frame, data),
            await _outcome(receive._ORIGINAL, data),
        ]
        assert outcomes[0] == outcomes[1]


class TestSameErrors:
    @pytest.mark.parametrize(
        "data",
        [
            # Basic.Deliver whose consumer tag is not UTF-8
            b"\x01\x00\x03\x00\x00\x00\x12\x00\x3c\x00\x3c\x02\xff\xfe"
            + (1).to_bytes(8, "big")
            + b"\x00\x00\x00\xce",
            # a frame whose end byte is wrong
            _wire([spec.Basic.Ack(1, False)])[:-1] + b"\x00",
            # an unknown method
            b"\x01\x00\x03\x00\x00\x00\x04\x00\x63\x00\x01\xce",
            # an unknown frame type
            b"\x07\x00\x03\x00\x00\x00\x01\x00\xce",
            # an empty body frame (pamqp refuses it)
            b"\x03\x00\x03\x00\x00\x00\x00\xce",
            # a Basic.Deliver cut short inside
            b"\x01\x00\x03\x00\x00\x00\x06\x00\x3c\x00\x3c\x05a\xce",
        ],
    )
    async def test_a_bad_frame_fails_as_it_did(self, data: bytes) -> None:
        outcomes = [
            await _outcome(receive.get_frame, data),
            await _outcome(receive._ORIGINAL, data),
        ]
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][0] in (InvalidFrameError, "frame")

    @pytest.mark.parametrize("cut", [3, 7, 12])
    async def test_a_stream_that_ends_mid_frame_fails_as_it_did(self, cut: int) -> None:
        """The same error; its byte counts are those of the read that failed."""
        data = _wire([FRAMES[1]])[:cut]
        for get in (receive.get_frame, receive._ORIGINAL):
            with pytest.raises(AMQPConnectionError, match="Server connection unexpectedly closed"):
                await get(_receiver(data))

    async def test_the_handshake_is_left_to_aiormq(self) -> None:
        """Before the first frame, aiormq's reader runs (it refuses a protocol header)."""
        receiver = _receiver(b"AMQP\x00\x00\x09\x01")
        receiver.started = False
        with pytest.raises(Exception, match="protocol header"):
            await receive.get_frame(receiver)


def test_only_checked_pamqp_versions_are_supported() -> None:
    assert receive.supported("4.0.1")
    assert not receive.supported("3.3.0")
    assert not receive.supported("5.0.0")
