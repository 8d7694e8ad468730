"""Content headers pamqp cannot decode are read property by property; floats go as doubles."""

from __future__ import annotations

import struct

import pamqp.decode
import pamqp.encode
import pamqp.exceptions
import pamqp.frame
import pytest
from pamqp import commands as spec
from pamqp import header

from burrowmq.amqp.frames import install, undecodable_of

pytestmark = pytest.mark.unit

install()


def _shortstr(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def _table(items: list[tuple[bytes, bytes]]) -> bytes:
    """A field table of long-string values, written by hand (the keys may be any bytes)."""
    body = b"".join(_shortstr(key) + b"S" + struct.pack(">I", len(v)) + v for key, v in items)
    return struct.pack(">I", len(body)) + body


def _frame(properties: list[tuple[str, bytes]], body_size: int = 3) -> bytes:
    """A content header frame's payload with ``properties`` (name, encoded value) set."""
    flags = 0
    data = b""
    for name in spec.Basic.Properties.__slots__:
        for given, encoded in properties:
            if given == name:
                flags |= spec.Basic.Properties.flags[name]
                data += encoded
    return struct.pack(">HHQH", 60, 0, body_size, flags) + data


def _decode(payload: bytes) -> header.ContentHeader:
    frame = pamqp.frame._unmarshal_header_frame(payload)
    assert isinstance(frame, header.ContentHeader)
    return frame


class TestTolerantHeaders:
    """What pamqp refuses is kept raw; the rest is decoded."""

    def test_good_frame_decodes_as_before(self) -> None:
        """A frame pamqp decodes is returned as pamqp decodes it, with nothing undecodable."""
        frame = _decode(_frame([("content_type", _shortstr(b"text/plain")), ("priority", b"\x05")]))
        assert frame.properties.content_type == "text/plain"
        assert frame.properties.priority == 5
        assert undecodable_of(frame) == {}

    def test_timestamp_past_year_9999(self) -> None:
        """A microsecond timestamp past year 9999 is kept as its raw int; the rest decodes."""
        raw = 253402300800000000
        frame = _decode(
            _frame(
                [
                    ("message_id", _shortstr(b"m-1")),
                    ("timestamp", struct.pack(">Q", raw)),
                    ("app_id", _shortstr(b"hostile")),
                ]
            )
        )
        assert frame.properties.timestamp is None
        assert frame.properties.message_id == "m-1"
        assert frame.properties.app_id == "hostile"
        assert undecodable_of(frame) == {"timestamp": raw}
        assert frame.body_size == 3

    def test_invalid_utf8_in_content_type(self) -> None:
        """Invalid UTF-8 in a short string is kept as its bytes."""
        frame = _decode(
            _frame([("content_type", _shortstr(b"\xff\xfe")), ("message_id", _shortstr(b"m"))])
        )
        assert frame.properties.content_type is None
        assert frame.properties.message_id == "m"
        assert undecodable_of(frame) == {"content_type": bytearray(b"\xff\xfe")}

    def test_invalid_utf8_in_a_header_name(self) -> None:
        """A headers table with an undecodable name is kept whole, raw; the others decode."""
        table = _table([(b"ok", b"1"), (b"\xff\xfe", b"x")])
        frame = _decode(_frame([("headers", table), ("correlation_id", _shortstr(b"c-1"))]))
        assert frame.properties.headers is None
        assert frame.properties.correlation_id == "c-1"
        assert undecodable_of(frame) == {"headers": bytearray(table[4:])}

    def test_truncated_frame_still_fails(self) -> None:
        """A frame whose framing is broken (its property flags cut off) is refused as before."""
        payload = struct.pack(">HHQ", 60, 0, 3) + b"\x80"
        with pytest.raises(pamqp.exceptions.UnmarshalingException):
            pamqp.frame._unmarshal_header_frame(payload)


class TestDoubles:
    """Floats in field tables are 64-bit doubles."""

    def test_float_is_encoded_as_a_double(self) -> None:
        """0.1 goes out as 'd' and eight bytes, and comes back as exactly 0.1."""
        encoded = pamqp.encode.field_table({"f": 0.1, "n": [2.5]})
        assert b"d" + struct.pack(">d", 0.1) in encoded
        _, decoded = pamqp.decode.field_table(encoded)
        assert decoded == {"f": 0.1, "n": [2.5]}

    def test_other_values_are_encoded_as_before(self) -> None:
        """Everything but floats is left to pamqp."""
        assert pamqp.encode.field_table({"i": 1, "s": "x"}).endswith(b"S\x00\x00\x00\x01x")
