"""The lean receive path: frames read in two reads and the hot ones decoded directly.

Part of the AMQP transport. aiormq's ``FrameReceiver.get_frame`` reads every frame in
three ``readexactly`` calls into a ``BytesIO``, copies it out four times, and hands it to
pamqp's generic ``frame.unmarshal``, which decodes a method's fields one by one through a
lookup of each field's type. That is a large part of what a delivery, a confirm or an RPC
reply costs the client. :func:`install` replaces it with :func:`get_frame`: the frame
head and the rest of the frame in two reads, and the frames of every message decoded
directly: ``Basic.Deliver``, ``Basic.Ack`` (a confirm), content headers (their field
tables and timestamps through pamqp's own decoders), content bodies and heartbeats. The
result is the same pamqp object pamqp would make; any frame the direct decoders do not
take whole (another method, a malformed frame, properties pamqp's strict decoder would
refuse, which burrowmq's tolerant fallback in :mod:`burrowmq.amqp.frames` then reads)
goes to pamqp's ``frame.unmarshal`` as before, so errors stay what they were
(``InvalidFrameError``, which closes the connection), as do the errors of a socket that
closes or fails mid-frame (``AMQPConnectionError``, with aiormq's texts; the byte counts
in "Read N bytes but M bytes expected" are of the read that failed, and the reads differ).

It relies on ``FrameReceiver``'s attributes ``reader``, ``started`` and ``lock``, on
pamqp's classes keeping their ``__slots__``, and is installed only for the aiormq and
pamqp versions it was checked against (:data:`CHECKED`); elsewhere aiormq's own reader
runs.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Final

import pamqp.frame
from aiormq.connection import FrameReceiver
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from pamqp import commands as spec
from pamqp import decode
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from burrowmq.amqp.lean import supported as aiormq_supported
from burrowmq.amqp.lean import version_checked
from burrowmq.amqp.wire import CONTENT_HEADER, FRAME_HEAD

__all__ = ["CHECKED", "get_frame", "install", "supported"]

CHECKED: Final = ((4, 0), (5,))
"""The pamqp versions (from, up to but not including) whose frame classes were read."""

_TAG = struct.Struct(">Q")
_FRAME_END = 0xCE
_DELIVER = spec.Basic.Deliver.index
_ACK = spec.Basic.Ack.index
_ORIGINAL: Final = FrameReceiver.get_frame
_PROPERTY_TYPES: Final = tuple(
    (name, spec.Basic.Properties.flags[name], getattr(spec.Basic.Properties, "_" + name))
    for name in spec.Basic.Properties.__slots__
)


def supported(version: str | None = None) -> bool:
    """Whether ``version`` of pamqp (default: the installed one) is in :data:`CHECKED`."""
    return version_checked("pamqp", CHECKED, version)


def _connection_error(exc: BaseException) -> AMQPConnectionError:
    """The error aiormq's reader raises for ``exc`` (same texts)."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return AMQPConnectionError(
            "Server connection unexpectedly closed. "
            f"Read {len(exc.partial)} bytes but {exc.expected} bytes expected"
        )
    if isinstance(exc, ConnectionRefusedError):
        return AMQPConnectionError(f"Server connection refused: {exc!r}")
    if isinstance(exc, ConnectionResetError):
        return AMQPConnectionError(f"Server connection reset: {exc!r}")
    if isinstance(exc, ConnectionError):
        return AMQPConnectionError(f"Server connection error: {exc!r}")
    return AMQPConnectionError(f"Server communication error: {exc!r}")


def _short(data: bytes, at: int) -> tuple[str, int]:
    end = at + 1 + data[at]
    if end > len(data):
        raise ValueError("short string past the frame's end")
    return data[at + 1 : end].decode("utf-8"), end


def _deliver(data: bytes) -> spec.Basic.Deliver:
    consumer_tag, at = _short(data, 4)
    (delivery_tag,) = _TAG.unpack_from(data, at)
    redelivered = data[at + 8] & 1 == 1
    exchange, at = _short(data, at + 9)
    routing_key, at = _short(data, at)
    if at != len(data):
        raise ValueError("Basic.Deliver of an unexpected size")
    frame = spec.Basic.Deliver.__new__(spec.Basic.Deliver)
    frame.consumer_tag = consumer_tag
    frame.delivery_tag = delivery_tag
    frame.redelivered = redelivered
    frame.exchange = exchange
    frame.routing_key = routing_key
    return frame


def _ack(data: bytes) -> spec.Basic.Ack:
    if len(data) != 13:
        raise ValueError("Basic.Ack of an unexpected size")
    frame = spec.Basic.Ack.__new__(spec.Basic.Ack)
    (frame.delivery_tag,) = _TAG.unpack_from(data, 4)
    frame.multiple = data[12] & 1 == 1
    return frame


def _header(data: bytes) -> ContentHeader:
    """A content header whose properties fit in one flag word (as every broker sends them),
    with pamqp's own decoders for field tables and timestamps."""
    class_id, weight, body_size = CONTENT_HEADER.unpack_from(data, 0)
    flags = data[12] << 8 | data[13]
    if flags & 1:
        raise ValueError("more than one property flag word")
    values: dict[str, Any] = {}
    at = 14
    for name, flag, kind in _PROPERTY_TYPES:
        if not flags & flag:
            continue
        if kind == "shortstr":
            values[name], at = _short(data, at)
        elif kind == "octet":
            values[name] = data[at]
            at += 1
        elif kind == "table":
            used, values[name] = decode.field_table(data[at:])
            at += used
        else:  # timestamp
            values[name] = decode.timestamp(data[at : at + 8])[1]
            at += 8
    if at != len(data):
        raise ValueError("content header of an unexpected size")
    frame = ContentHeader(weight, body_size, spec.Basic.Properties(**values))
    frame.class_id = class_id
    return frame


def _decode(kind: int, size: int, rest: bytes) -> Any:
    """The frame of type ``kind`` whose payload and end byte are ``rest``, decoded directly
    (raises anything for a frame it does not take whole, which pamqp then decodes)."""
    if rest[-1] != _FRAME_END:
        raise ValueError("no frame end")
    if not size and kind != 8:
        raise ValueError("an empty frame")  # pamqp refuses it: so it says why
    payload = rest[:-1]
    if kind == 3:  # content body
        return ContentBody(payload)
    if kind == 1:  # method
        index = int.from_bytes(payload[0:4], "big")
        if index == _DELIVER:
            return _deliver(payload)
        if index == _ACK:
            return _ack(payload)
        return pamqp.frame._unmarshal_method_frame(payload)
    if kind == 2:  # content header
        return _header(payload)
    if kind == 8 and size == 0:
        return Heartbeat()
    raise ValueError(f"frame type {kind}")


async def get_frame(self: Any) -> tuple[int, int, Any]:
    """The next frame of ``self`` (an aiormq ``FrameReceiver``): ``(bytes, channel, frame)``.

    Raises:
        StopAsyncIteration: the connection's stream ended.
        AMQPConnectionError: the socket closed or failed mid-frame.
        InvalidFrameError: the frame cannot be decoded.
    """
    reader = getattr(self, "reader", None)
    if not self.started or reader is None or reader.at_eof():
        # The protocol handshake, and the end of the stream: aiormq's own code.
        return await _ORIGINAL(self)
    async with self.lock:
        try:
            head = await reader.readexactly(7)
            kind, channel, size = FRAME_HEAD.unpack(head)
            rest = await reader.readexactly(size + 1)
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise _connection_error(exc) from exc
    try:
        return 8 + size, channel, _decode(kind, size, rest)
    except Exception:
        pass  # anything but a well-formed frame of the common kinds: as pamqp decodes it
    try:
        return pamqp.frame.unmarshal(head + rest)
    except PAMQPException as exc:
        raise InvalidFrameError(str(exc)) from exc


_SUPPORTED: Final = aiormq_supported() and supported()


def install() -> None:
    """Read frames with :func:`get_frame` where aiormq and pamqp are versions it was
    checked against (idempotent)."""
    if _SUPPORTED:
        FrameReceiver.get_frame = get_frame  # type: ignore[method-assign]
        FrameReceiver.__anext__ = get_frame  # type: ignore[method-assign]
