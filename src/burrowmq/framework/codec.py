"""Codec: bodies to Python values and back, decided once per route by annotations.

Decoding follows the handler's first parameter's annotation: ``bytes`` gets the raw
body, ``str`` the body as UTF-8 text, anything else (a pydantic model, ``dict``,
``list[int]``, any type pydantic can validate) is parsed as JSON and validated; without
a type to decode to, :func:`decode_plain` follows the content type instead.
Encoding sends ``bytes`` as they are, ``str`` as UTF-8 text and everything else as JSON;
:func:`encoder_for` shapes values by an annotation first (an RPC handler's return type).

Other content types are :class:`Codec` objects: small values naming the content types
they handle, with ``encode`` and ``decode``. The built-in ones are :class:`JsonCodec`,
:class:`TextCodec`, :class:`BytesCodec` and :class:`MsgPackCodec` (``application/msgpack``,
with the ``msgpack`` extra installed); an App consults its own (``App(codecs=[...])``)
first, then these, through :class:`burrowmq.framework.codecs.Codecs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from burrowmq.exceptions import ConfigurationError, DecodeError, EncodeError

__all__ = [
    "JSON",
    "MSGPACK",
    "OCTET_STREAM",
    "TEXT",
    "BytesCodec",
    "Codec",
    "Decoder",
    "Encoder",
    "JsonCodec",
    "MsgPackCodec",
    "TextCodec",
    "decode_plain",
    "decoder_for",
    "describe_validation_error",
    "encode",
    "encoder_for",
]

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
OCTET_STREAM = "application/octet-stream"
MSGPACK = "application/msgpack"

Decoder = Callable[[bytes], Any]
"""Turns a body into the value a handler asked for; raises :class:`DecodeError`."""

Encoder = Callable[[Any], tuple[bytes, str]]
"""Turns a value into a body and its content type; raises :class:`EncodeError`."""


def describe_validation_error(error: ValidationError, *, limit: int = 5) -> str:
    """Render a pydantic error as one line that names each field at fault.

    Args:
        error: the validation error.
        limit: how many field errors to spell out before summarising the rest.

    Returns:
        e.g. ``"total: Input should be a valid number (got 'abc')"``.
    """
    parts = []
    errors = error.errors(include_url=False)
    for item in errors[:limit]:
        if item["type"] == "json_invalid":
            parts.append(f"body is not valid JSON ({item['ctx'].get('error', item['msg'])})")
            continue
        loc = ".".join(str(p) for p in item["loc"]) or "body"
        given = item.get("input")
        shown = repr(given)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        suffix = "" if item["type"] == "missing" else f" (got {shown})"
        parts.append(f"{loc}: {item['msg']}{suffix}")
    if len(errors) > limit:
        parts.append(f"... and {len(errors) - limit} more")
    return "; ".join(parts)


def _decode_bytes(body: bytes) -> bytes:
    return body


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"body is not valid UTF-8 text (byte {exc.start})") from None


def decoder_for(annotation: Any) -> Decoder:
    """Build the decoder for a handler parameter's annotation, once per route.

    Args:
        annotation: the annotation (``bytes``, ``str``, a model, any type pydantic
            can validate); ``None``/missing decodes JSON to plain data.

    Returns:
        A callable that turns a body into the value, raising :class:`DecodeError`.
    """
    if annotation is bytes:
        return _decode_bytes
    if annotation is str:
        return _decode_text
    if annotation is None:
        annotation = Any
    validate: Callable[[bytes], Any]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        validate = annotation.model_validate_json
    else:
        validate = TypeAdapter(annotation).validate_json

    def decode(body: bytes) -> Any:
        try:
            return validate(body)
        except ValidationError as exc:
            raise DecodeError(describe_validation_error(exc), errors=_plain_errors(exc)) from None

    return decode


def _plain_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False)
    ]


def encode(value: Any) -> tuple[bytes, str]:
    """Encode a value for the wire.

    Args:
        value: bytes, str, a pydantic model or anything pydantic can serialise.

    Returns:
        The body and its content type.

    Raises:
        EncodeError: the value cannot be serialised to JSON (names its type), or holds a
            NaN or infinite float, which JSON has no word for (names its path).
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), OCTET_STREAM
    if isinstance(value, str):
        return value.encode("utf-8"), TEXT
    if isinstance(value, BaseModel):
        data = value.__pydantic_serializer__.to_json(value)
        # A model writes a NaN as null (unless its config chose a form, which is kept).
        if b"null" in data and _null_not_none(value):
            _refuse_non_finite(value)
        return data, JSON
    try:
        data = pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise EncodeError(
            f"cannot encode a value of type {type(value).__name__} as JSON: {exc}"
        ) from exc
    if b"NaN" in data or b"Infinity" in data:
        # pydantic wrote a float as a bare word JSON lacks, or a string reads so: the two
        # encode alike with NaN as null only for a string. Said even where the walk
        # cannot tell where (it does not enter dataclasses and the like).
        _refuse_non_finite(value, found=data != pydantic_core.to_json(value, inf_nan_mode="null"))
    elif b"null" in data:  # a model inside writes its NaN as null
        _refuse_non_finite(value)
    return data, JSON


def _null_not_none(model: BaseModel) -> bool:
    """Whether a model's JSON holds a ``null`` that is not a field set to ``None``.

    Only then can a NaN hide in it (as ``null``), and only then is the walk of
    :func:`_non_finite` needed: optional fields left ``None``, the common case, cost one
    more serialisation with ``exclude_none`` (about 2 µs) instead of a walk of the whole
    model (about 15 µs for an order of five items).
    """
    return b"null" in model.__pydantic_serializer__.to_json(model, exclude_none=True)


def _non_finite(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, float]]:
    """Yield ``(path, float)`` for every NaN or infinity in models, mappings and sequences."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield ".".join(path) or "the top level", value
    elif isinstance(value, BaseModel):
        if "ser_json_inf_nan" in value.model_config:
            return  # the model chose how its NaN travels
        for name, item in value.__dict__.items():
            yield from _non_finite(item, (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, str(key)))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, str(index)))


def _refuse_non_finite(value: Any, *, found: bool = False) -> None:
    """Raise :class:`EncodeError` naming where ``value`` holds a NaN or an infinity.

    JSON has no NaN or Infinity: pydantic would write a bare word no JSON parser reads
    (or, in a model, ``null`` in the float's place), so such a body is refused. A model
    whose config sets ``ser_json_inf_nan`` itself chose a representation and is kept.

    Args:
        value: the value about to be encoded.
        found: the encoded JSON is known to hold one (said even when the walk, which does
            not enter dataclasses and the like, cannot tell where).
    """
    first = next(_non_finite(value), None)
    if first is not None:
        where, number = first
        raise EncodeError(
            f"cannot encode the float {number!r} at {where} as JSON, which has no NaN or Infinity"
        )
    if found:
        raise EncodeError(
            "cannot encode a NaN or infinite float as JSON, which has no NaN or Infinity"
        )


def encoder_for(annotation: Any) -> Encoder:
    """Build the encoder of values shaped by ``annotation``, once (an RPC return type).

    A model annotation serialises instances directly and validates anything else (a
    ``dict``, say) into the model first; any other annotation pydantic understands
    validates then serialises; no annotation (or ``None``, ``Any``, ``bytes``, ``str``)
    encodes the value as :func:`encode` does.

    Raises:
        ConfigurationError: pydantic cannot build a schema for the annotation.
    """
    if annotation is None or annotation is Any or annotation is type(None):
        return encode
    if annotation in (bytes, str):
        return encode
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        model = annotation

        def encode_model(value: Any) -> tuple[bytes, str]:
            try:
                if not isinstance(value, model):
                    value = model.model_validate(value)
            except ValidationError as exc:
                raise EncodeError(
                    describe_validation_error(exc), errors=_plain_errors(exc)
                ) from exc
            data = value.__pydantic_serializer__.to_json(value)
            if b"null" in data and _null_not_none(value):
                _refuse_non_finite(value)
            return data, JSON

        return encode_model
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except Exception as exc:
        raise ConfigurationError(f"cannot use the annotation {annotation!r}: {exc}") from exc

    def encode_value(value: Any) -> tuple[bytes, str]:
        try:
            shaped = adapter.validate_python(value)
            data = adapter.dump_json(shaped)
            if b"null" in data:  # pydantic writes a NaN as null here
                _refuse_non_finite(shaped)
            return data, JSON
        except ValidationError as exc:
            raise EncodeError(describe_validation_error(exc), errors=_plain_errors(exc)) from exc
        except pydantic_core.PydanticSerializationError as exc:
            raise EncodeError(f"cannot encode the value as JSON: {exc}") from exc

    return encode_value


def decode_plain(body: bytes, content_type: str | None) -> Any:
    """Decode a body by its content type alone: JSON to plain data, text to ``str``.

    Anything else (``application/octet-stream``, ...) comes back as the raw bytes.

    Raises:
        DecodeError: the body is not the JSON or text its content type says.
    """
    if content_type == JSON or content_type is None:
        try:
            return pydantic_core.from_json(body)
        except ValueError as exc:
            raise DecodeError(f"the body is not valid JSON: {exc}") from exc
    if content_type.startswith("text/"):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"the body is not valid UTF-8 text (byte {exc.start})") from exc
    return body


@runtime_checkable
class Codec(Protocol):
    """How bodies of some content types become Python data and back.

    A codec is a small object: the content types it handles (media types such as
    ``"application/msgpack"``, without parameters; matched case-insensitively), and two
    functions. ``decode`` returns plain data (dicts, lists, numbers, strings) that
    pydantic then validates into the handler's annotation; ``encode`` receives the value
    being published (a pydantic model, or plain data) and returns the body. Either
    raises :class:`~burrowmq.DecodeError` / :class:`~burrowmq.EncodeError` with a reason;
    any other exception is wrapped into one.
    """

    content_types: tuple[str, ...]

    def encode(self, value: Any) -> bytes:
        """The body of ``value``."""
        ...

    def decode(self, body: bytes) -> Any:
        """The data in ``body``."""
        ...


class JsonCodec:
    """``application/json`` (also any ``+json`` type, such as MassTransit's
    ``application/vnd.masstransit+json``): decoded and validated in one step by pydantic."""

    content_types: tuple[str, ...] = (JSON, "text/json")

    def encode(self, value: Any) -> bytes:
        """``value`` as JSON (models serialised by pydantic)."""
        return encode(value)[0]

    def decode(self, body: bytes) -> Any:
        """The JSON data in ``body``."""
        try:
            return pydantic_core.from_json(body)
        except ValueError as exc:
            raise DecodeError(f"the body is not valid JSON: {exc}") from None


class TextCodec:
    """``text/plain``: UTF-8 text. A structured annotation parses the text as JSON (as
    many publishers label JSON ``text/plain``); values that are not ``str`` are sent as
    JSON text."""

    content_types: tuple[str, ...] = ("text/plain",)

    def encode(self, value: Any) -> bytes:
        """``value`` as UTF-8 (a ``str``) or JSON text."""
        return value.encode("utf-8") if isinstance(value, str) else encode(value)[0]

    def decode(self, body: bytes) -> Any:
        """``body`` as text."""
        return _decode_text(body)


class BytesCodec:
    """``application/octet-stream``: the body as it is. A structured annotation parses
    it as JSON (as ever); values that are not bytes are sent as JSON."""

    content_types: tuple[str, ...] = (OCTET_STREAM,)

    def encode(self, value: Any) -> bytes:
        """``value`` as it is (bytes) or as JSON."""
        return (
            bytes(value) if isinstance(value, bytes | bytearray | memoryview) else encode(value)[0]
        )

    def decode(self, body: bytes) -> Any:
        """``body`` itself."""
        return body


class MsgPackCodec:
    """``application/msgpack`` (and ``application/x-msgpack``), with the ``msgpack`` extra
    (``pip install 'burrowmq[msgpack]'``); without it such messages are dead-lettered,
    and publishing them fails, with a reason that names the extra."""

    content_types: tuple[str, ...] = (MSGPACK, "application/x-msgpack")

    def encode(self, value: Any) -> bytes:
        """``value`` (a model, or plain data) as MessagePack."""
        msgpack = _msgpack(EncodeError)
        try:
            return msgpack.packb(pydantic_core.to_jsonable_python(value), use_bin_type=True)  # type: ignore[no-any-return]
        except Exception as exc:  # msgpack's and pydantic's errors, whatever their type
            raise EncodeError(
                f"cannot encode a value of type {type(value).__name__} as MessagePack: {exc}"
            ) from None

    def decode(self, body: bytes) -> Any:
        """The MessagePack data in ``body``."""
        msgpack = _msgpack(DecodeError)
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError...
            raise DecodeError(
                f"the body is not valid MessagePack ({type(exc).__name__}: {exc})"
            ) from None


def _msgpack(error: type[DecodeError] | type[EncodeError]) -> Any:
    try:
        import msgpack  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise error(
            "application/msgpack needs the msgpack extra: pip install 'burrowmq[msgpack]'"
        ) from None
    return msgpack
