"""Two corrections to pamqp's field encoding, installed once: floats travel as 64-bit
doubles, and a message whose properties cannot be decoded is still delivered, with what
could be read, instead of taking the connection down.

pamqp encodes a Python float in a field table as a 32-bit AMQP float: 0.1 arrives as
0.10000000149011612 in every other client. :func:`install` makes it a 64-bit double
(``d``), which RabbitMQ and every client decode, so a float arrives as it was sent.

pamqp decodes each content header frame strictly: a ``timestamp`` past the year 9999,
invalid UTF-8 in a short string (``content_type``, ``message_id``, a header name, ...)
raises, aiormq treats that as a broken frame and closes the whole connection, and the
broker hands the same message out again first after the reconnect: every consumer on
the connection is offline for good. :func:`install` puts a fallback behind pamqp's
decoder: when the strict decode fails, the properties are read one by one, those that
cannot be decoded are left unset, and their raw bytes are attached to the frame as
``undecodable`` (property name -> raw value). The consumer hands them on with the
delivery, and the pipeline dead-letters it with the reason, keeping the raw values.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import pamqp.encode
import pamqp.frame
from pamqp import commands as spec
from pamqp import decode, header

__all__ = ["UNDECODABLE", "install", "undecodable_of"]

UNDECODABLE: Final = "burrowmq_undecodable"
"""The attribute of a content header frame that holds what could not be decoded."""

_SIZE_OF = {"octet": 1, "timestamp": 8}
_strict = pamqp.frame._unmarshal_header_frame
_encode_value = pamqp.encode.encode_table_value
_DOUBLE = struct.Struct(">d")


def _encode_table_value(value: Any) -> bytes:
    if type(value) is float:
        return b"d" + _DOUBLE.pack(value)
    return _encode_value(value)


def _field_size(data: bytes, data_type: str) -> int:
    """How many bytes the field at the start of ``data`` takes, without decoding it."""
    if data_type == "shortstr":
        return 1 + data[0]
    if data_type == "table":
        return 4 + int(struct.unpack(">I", data[0:4])[0])
    return _SIZE_OF[data_type]


def _raw(data: bytes, data_type: str, size: int) -> Any:
    if data_type == "timestamp":
        return int(struct.unpack(">Q", data[0:8])[0])
    skip = 1 if data_type == "shortstr" else 4
    return bytearray(data[skip:size])


def _tolerant(frame_data: bytes) -> header.ContentHeader:
    """Decode a content header property by property, keeping what fails raw."""
    content_header = header.ContentHeader()
    class_id, weight, body_size = struct.unpack(">HHQ", frame_data[0:12])
    content_header.class_id, content_header.weight = class_id, weight
    content_header.body_size = body_size
    offset, flags = header.ContentHeader._get_flags(frame_data[12:])
    data = frame_data[12 + offset :]
    properties = spec.Basic.Properties()
    failed: dict[str, Any] = {}
    for name in properties.__slots__:
        if not flags & properties.flags[name]:
            continue
        data_type = getattr(spec.Basic.Properties, "_" + name)
        size = _field_size(data, data_type)
        try:
            _, value = decode.by_type(data[:size], data_type)
        except (ValueError, OverflowError, OSError, struct.error, TypeError):
            failed[name] = _raw(data, data_type, size)
        else:
            setattr(properties, name, value)
        data = data[size:]
    content_header.properties = properties
    setattr(content_header, UNDECODABLE, failed)
    return content_header


def _unmarshal_header_frame(frame_data: bytes) -> header.ContentHeader:
    try:
        return _strict(frame_data)
    except Exception:
        try:
            return _tolerant(frame_data)
        except Exception:  # truly broken framing: let pamqp say so, as before
            return _strict(frame_data)


def install() -> None:
    """Send floats as doubles, and decode content headers tolerantly (idempotent)."""
    pamqp.encode.encode_table_value = _encode_table_value
    pamqp.frame._unmarshal_header_frame = _unmarshal_header_frame


def undecodable_of(content_header: Any) -> dict[str, Any]:
    """What could not be decoded of a frame's properties (name -> raw); usually empty."""
    found = getattr(content_header, UNDECODABLE, None)
    return found if isinstance(found, dict) else {}
