"""Codec: decoders chosen by annotation, DecodeError reasons that name the field, encode."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
import re
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from burrowmq.exceptions import DecodeError, EncodeError
from burrowmq.framework.codec import (
    JSON,
    OCTET_STREAM,
    TEXT,
    decode_plain,
    decoder_for,
    describe_validation_error,
    encode,
    encoder_for,
)

pytestmark = pytest.mark.unit


class OrderPlaced(BaseModel):
    order_id: str
    total: float


class Line(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    order_id: str
    lines: list[Line]


class Seven(BaseModel):
    a: int
    b: int
    c: int
    d: int
    e: int
    f: int
    g: int


class Opaque:
    """A type pydantic does not know how to serialise."""


def _validation_error(model: type[BaseModel], data: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value


class TestDecoderFor:
    """``decoder_for`` picks the decoding from the annotation."""

    @pytest.mark.parametrize(
        ("annotation", "body", "expected"),
        [
            (bytes, b"\x00\xffraw", b"\x00\xffraw"),
            (bytes, b"", b""),
            (str, "héllo".encode(), "héllo"),
            (str, b'{"not": "parsed"}', '{"not": "parsed"}'),
            (str, b"", ""),
            (dict, b'{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
            (list[int], b"[1, 2, 3]", [1, 2, 3]),
            (list[int], b'[1, "2"]', [1, 2]),
            (int, b"42", 42),
            (None, b'{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}),
            (None, b'"text"', "text"),
            (None, b"null", None),
            (Any, b"[1]", [1]),
        ],
        ids=lambda v: repr(v)[:30],
    )
    def test_decodes(self, annotation: Any, body: bytes, expected: Any) -> None:
        """Each annotation decodes its body to the value the handler asked for."""
        assert decoder_for(annotation)(body) == expected

    def test_bytes_body_is_returned_as_is(self) -> None:
        """A ``bytes`` annotation gets the very body, not a copy or a parse."""
        body = b'{"a": 1}'
        assert decoder_for(bytes)(body) is body

    def test_model_is_validated(self) -> None:
        """A pydantic model annotation parses JSON into an instance of the model."""
        value = decoder_for(OrderPlaced)(b'{"order_id": "1", "total": 9.5}')
        assert value == OrderPlaced(order_id="1", total=9.5)

    def test_nested_model_is_validated(self) -> None:
        """Nested models are validated all the way down."""
        body = b'{"order_id": "1", "lines": [{"sku": "A", "qty": 2}]}'
        assert decoder_for(Order)(body) == Order(order_id="1", lines=[Line(sku="A", qty=2)])


class TestDecodeErrors:
    """A body that does not decode raises ``DecodeError`` with a one-line reason."""

    @pytest.mark.parametrize(
        ("annotation", "body", "reason_starts"),
        [
            (
                OrderPlaced,
                b'{"order_id": "1", "total": "abc"}',
                "total: Input should be a valid number",
            ),
            (OrderPlaced, b'{"total": 1}', "order_id: Field required"),
            (Order, b'{"order_id": "1", "lines": [{"sku": "A", "qty": "x"}]}', "lines.0.qty: "),
            (list[int], b'[1, "x"]', "1: Input should be a valid integer"),
            (dict, b"[1]", "body: Input should be"),
            (OrderPlaced, b"[1]", "body: Input should be"),
            (int, b'"abc"', "body: Input should be a valid integer"),
        ],
        ids=[
            "bad-number",
            "missing",
            "nested",
            "list-item",
            "dict-not-object",
            "model-not-object",
            "int",
        ],
    )
    def test_reason_names_the_field(self, annotation: Any, body: bytes, reason_starts: str) -> None:
        """The reason starts with the dotted location of the field at fault."""
        with pytest.raises(DecodeError) as info:
            decoder_for(annotation)(body)
        assert info.value.reason.startswith(reason_starts), info.value.reason
        assert str(info.value) == info.value.reason

    def test_reason_shows_the_bad_input(self) -> None:
        """The reason quotes the value given for the field."""
        with pytest.raises(DecodeError) as info:
            decoder_for(OrderPlaced)(b'{"order_id": "1", "total": "abc"}')
        assert info.value.reason.endswith("(got 'abc')")

    def test_missing_field_has_no_got_suffix(self) -> None:
        """A missing field is not followed by a ``(got ...)`` quote of the whole body."""
        with pytest.raises(DecodeError) as info:
            decoder_for(OrderPlaced)(b'{"order_id": "1"}')
        assert info.value.reason == "total: Field required"

    def test_structured_errors_are_kept(self) -> None:
        """``errors`` holds plain loc/msg/type dicts from pydantic."""
        with pytest.raises(DecodeError) as info:
            decoder_for(OrderPlaced)(b'{"order_id": "1", "total": "abc"}')
        assert info.value.errors == [
            {
                "loc": ["total"],
                "msg": "Input should be a valid number, unable to parse string as a number",
                "type": "float_parsing",
            }
        ]

    @pytest.mark.parametrize("annotation", [OrderPlaced, dict, list[int], None])
    @pytest.mark.parametrize("body", [b"not json", b"{", b"", b"\xff\xfe"])
    def test_invalid_json(self, annotation: Any, body: bytes) -> None:
        """A body that is not JSON is reported as such, whatever the annotation."""
        with pytest.raises(DecodeError) as info:
            decoder_for(annotation)(body)
        assert info.value.reason.startswith("body is not valid JSON ("), info.value.reason

    @pytest.mark.parametrize(("body", "byte"), [(b"\xff", 0), (b"ab\xffcd", 2), (b"ok\xc3", 2)])
    def test_invalid_utf8_for_str(self, body: bytes, byte: int) -> None:
        """A ``str`` handler given bytes that are not UTF-8 gets a reason naming the byte."""
        with pytest.raises(DecodeError) as info:
            decoder_for(str)(body)
        assert info.value.reason == f"body is not valid UTF-8 text (byte {byte})"

    def test_decode_error_does_not_chain_pydantic(self) -> None:
        """The DecodeError hides pydantic's exception (no cause, no context shown)."""
        with pytest.raises(DecodeError) as info:
            decoder_for(OrderPlaced)(b"{}")
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__


class TestDescribeValidationError:
    """``describe_validation_error`` renders pydantic errors as one line."""

    def test_joins_fields_with_semicolons(self) -> None:
        """Each field at fault is named, separated by ``"; "``."""
        error = _validation_error(OrderPlaced, {"total": "x"})
        assert describe_validation_error(error) == (
            "order_id: Field required; "
            "total: Input should be a valid number, unable to parse string as a number (got 'x')"
        )

    @pytest.mark.parametrize(
        ("limit", "expected"),
        [
            (
                5,
                "a: Field required; b: Field required; c: Field required; d: Field required; "
                "e: Field required; ... and 2 more",
            ),
            (2, "a: Field required; b: Field required; ... and 5 more"),
            (7, "; ".join(f"{name}: Field required" for name in "abcdefg")),
            (10, "; ".join(f"{name}: Field required" for name in "abcdefg")),
        ],
    )
    def test_limit(self, limit: int, expected: str) -> None:
        """At most ``limit`` fields are spelled out; the rest are counted."""
        error = _validation_error(Seven, {})
        assert describe_validation_error(error, limit=limit) == expected

    def test_default_limit_is_five(self) -> None:
        """Without ``limit``, five fields are spelled out."""
        error = _validation_error(Seven, {})
        assert describe_validation_error(error).endswith("e: Field required; ... and 2 more")

    def test_long_input_is_shortened(self) -> None:
        """An input whose repr is longer than 60 characters is cut to 60 with ``...``."""
        error = _validation_error(OrderPlaced, {"order_id": "1", "total": "x" * 200})
        described = describe_validation_error(error)
        shown = described.split("(got ", 1)[1][:-1]
        assert len(shown) == 60
        assert shown.endswith("...")


class TestEncode:
    """``encode`` picks the wire form and content type from the value."""

    @pytest.mark.parametrize(
        ("value", "body", "content_type"),
        [
            (b"\x00raw", b"\x00raw", OCTET_STREAM),
            (bytearray(b"ba"), b"ba", OCTET_STREAM),
            (memoryview(b"mv"), b"mv", OCTET_STREAM),
            ("héllo", "héllo".encode(), TEXT),
            ("", b"", TEXT),
            ({"a": 1, "b": [True, None]}, b'{"a":1,"b":[true,null]}', JSON),
            ([1, 2], b"[1,2]", JSON),
            (None, b"null", JSON),
            (3.5, b"3.5", JSON),
            (OrderPlaced(order_id="1", total=9.5), b'{"order_id":"1","total":9.5}', JSON),
            (
                {"order": OrderPlaced(order_id="2", total=1)},
                b'{"order":{"order_id":"2","total":1.0}}',
                JSON,
            ),
            (
                datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
                b'"2024-01-02T03:04:05Z"',
                JSON,
            ),
            ({"on": datetime.date(2024, 1, 2)}, b'{"on":"2024-01-02"}', JSON),
            (decimal.Decimal("1.10"), b'"1.10"', JSON),
            (
                uuid.UUID("12345678-1234-5678-1234-567812345678"),
                b'"12345678-1234-5678-1234-567812345678"',
                JSON,
            ),
        ],
        ids=lambda v: type(v).__name__,
    )
    def test_encodes(self, value: Any, body: bytes, content_type: str) -> None:
        """Bytes go as they are, text as UTF-8 and everything else as compact JSON."""
        assert encode(value) == (body, content_type)

    def test_bytes_like_become_bytes(self) -> None:
        """A ``bytearray`` or ``memoryview`` is sent as ``bytes``."""
        data, _ = encode(bytearray(b"x"))
        assert type(data) is bytes

    def test_model_round_trips(self) -> None:
        """A model encoded then decoded with its own decoder is equal to itself."""
        order = Order(order_id="7", lines=[Line(sku="A", qty=1), Line(sku="B", qty=3)])
        data, _ = encode(order)
        assert decoder_for(Order)(data) == order

    @pytest.mark.parametrize(
        ("value", "type_name"),
        [(Opaque(), "Opaque"), ({"key": Opaque()}, "dict"), ([object()], "list")],
        ids=["opaque", "nested-in-dict", "nested-in-list"],
    )
    def test_non_serialisable_value_names_its_type(self, value: Any, type_name: str) -> None:
        """A value that cannot be JSON raises ``EncodeError`` naming the value's type."""
        with pytest.raises(EncodeError) as info:
            encode(value)
        assert f"cannot encode a value of type {type_name} as JSON" in info.value.reason


class Reading(BaseModel):
    """A model whose float may be NaN or infinite."""

    sensor: str
    value: float


@dataclasses.dataclass
class Point:
    """A dataclass, which the NaN walk does not enter."""

    x: float


class Lenient(BaseModel):
    """A model that chose a JSON form for NaN itself."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    value: float


class Sparse(BaseModel):
    """A model with optional fields, left ``None``, beside floats."""

    note: str | None = None
    readings: list[Reading] = []
    extra: dict[str, float | None] = {}


class TestNonFiniteFloats:
    """JSON has no NaN or Infinity: such a float is refused, naming where it sits."""

    @pytest.mark.parametrize(
        ("value", "words"),
        [
            (
                Sparse(readings=[Reading(sensor="s", value=math.nan)]),
                "the float nan at readings.0.value",
            ),
            (Sparse(extra={"a": None, "b": math.inf}), "the float inf at extra.b"),
        ],
        ids=["beside-none-field", "beside-none-in-dict"],
    )
    def test_refused_beside_none_fields(self, value: Sparse, words: str) -> None:
        """A NaN is found in a model whose ``None`` fields write ``null`` too."""
        with pytest.raises(EncodeError) as info:
            encode(value)
        assert info.value.reason == f"cannot encode {words} as JSON, which has no NaN or Infinity"

    def test_none_fields_alone_are_fine(self) -> None:
        """Optional fields left ``None`` are encoded as ``null``, nothing refused."""
        body = Sparse(readings=[Reading(sensor="s", value=1.5)], extra={"a": None})
        assert encode(body) == (
            b'{"note":null,"readings":[{"sensor":"s","value":1.5}],"extra":{"a":null}}',
            JSON,
        )

    @pytest.mark.parametrize(
        ("value", "words"),
        [
            (math.nan, "the float nan at the top level"),
            ({"a": [1.0, math.inf]}, "the float inf at a.1"),
            ({"readings": [{"v": -math.inf}]}, "the float -inf at readings.0.v"),
            (Reading(sensor="s", value=math.nan), "the float nan at value"),
            ({"r": Reading(sensor="s", value=math.inf)}, "the float inf at r.value"),
        ],
        ids=["top-level", "in-list", "nested", "model", "model-in-dict"],
    )
    def test_refused_with_its_path(self, value: Any, words: str) -> None:
        """``encode`` raises ``EncodeError`` naming the float and its path."""
        with pytest.raises(EncodeError) as info:
            encode(value)
        assert info.value.reason == f"cannot encode {words} as JSON, which has no NaN or Infinity"

    def test_found_where_the_walk_cannot_look(self) -> None:
        """A NaN inside a dataclass is refused too, without a path."""
        with pytest.raises(EncodeError, match=r"^cannot encode a NaN or infinite float as JSON"):
            encode([Point(x=math.nan)])

    def test_nulls_are_fine(self) -> None:
        """A body with nulls (where a model would write its NaN) is encoded as it is."""
        assert encode({"a": None, "r": Reading(sensor="null", value=1)}) == (
            b'{"a":null,"r":{"sensor":"null","value":1.0}}',
            JSON,
        )

    def test_the_words_in_a_string_are_fine(self) -> None:
        """A string that reads "NaN" or "Infinity" is ordinary text, encoded as such."""
        assert encode({"s": "NaN Infinity"}) == (b'{"s":"NaN Infinity"}', JSON)

    def test_a_model_that_chose_a_form_keeps_it(self) -> None:
        """A model whose config sets ``ser_json_inf_nan`` is encoded as it asked."""
        assert encode(Lenient(value=math.nan)) == (b'{"value":"NaN"}', JSON)

    @pytest.mark.parametrize("annotation", [Reading, dict[str, float], float])
    def test_encoder_for_refuses_too(self, annotation: Any) -> None:
        """An RPC result shaped by its annotation is refused the same way."""
        value: Any = {"sensor": "s", "value": math.nan} if annotation is Reading else math.nan
        if annotation == dict[str, float]:
            value = {"value": math.nan}
        with pytest.raises(EncodeError, match=r"^cannot encode the float nan at "):
            encoder_for(annotation)(value)


class Price(BaseModel):
    """A reply model."""

    total: float


class TestEncoderFor:
    """An annotation (an RPC handler's return type) shapes what is encoded."""

    def test_model_instance_is_serialised(self) -> None:
        """A model instance is sent as its JSON."""
        body, content_type = encoder_for(Price)(Price(total=2))
        assert json.loads(body) == {"total": 2.0}
        assert content_type == "application/json"

    def test_dict_is_validated_into_the_model(self) -> None:
        """A dict returned for a model annotation is validated and coerced."""
        body, _ = encoder_for(Price)({"total": "2.5"})
        assert json.loads(body) == {"total": 2.5}

    def test_generic_annotation_validates(self) -> None:
        """A list[int] annotation coerces, and a wrong value is an EncodeError naming the item."""
        encode = encoder_for(list[int])
        assert json.loads(encode(["1", 2])[0]) == [1, 2]
        with pytest.raises(EncodeError, match=r"0: Input should be a valid integer"):
            encode(["x"])

    @pytest.mark.parametrize("annotation", [None, Any, type(None), str, bytes])
    def test_no_shaping_encodes_as_is(self, annotation: Any) -> None:
        """Without a shaping annotation the value is encoded like any message."""
        assert encoder_for(annotation)("text") == (b"text", "text/plain; charset=utf-8")


class TestDecodePlain:
    """Without a type to decode to, the content type decides."""

    @pytest.mark.parametrize(
        ("body", "content_type", "value"),
        [
            (b'{"a": [1, 2]}', JSON, {"a": [1, 2]}),
            (b"[1]", None, [1]),
            ("caf\u00e9".encode(), TEXT, "caf\u00e9"),
            (b"\x00\xff", OCTET_STREAM, b"\x00\xff"),
        ],
        ids=["json", "no-content-type", "text", "binary"],
    )
    def test_content_type_decides(self, body: bytes, content_type: str | None, value: Any) -> None:
        """JSON (or no content type) gives plain data, text a str, anything else the bytes."""
        assert decode_plain(body, content_type) == value

    @pytest.mark.parametrize(
        ("body", "content_type", "reason"),
        [(b"{nope", JSON, "not valid JSON"), (b"\xff", TEXT, "not valid UTF-8 text (byte 0)")],
    )
    def test_a_body_that_is_not_what_it_says_is_a_decode_error(
        self, body: bytes, content_type: str, reason: str
    ) -> None:
        """A body that is not the JSON or text its content type claims raises DecodeError."""
        with pytest.raises(DecodeError, match=re.escape(reason)):
            decode_plain(body, content_type)
