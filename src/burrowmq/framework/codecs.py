"""Codecs: an App's codecs in order, and the content-aware decoders and encoder built
from them.

The App's own codecs (``App(codecs=[...])``) come first, then the built-in ones (JSON,
MessagePack, text, bytes); the first codec that names a content type handles it. A
decoder is built once per route, for the handler's annotation
(:meth:`Codecs.decoder`); per delivery it looks at the ``content_encoding`` and
``content_type`` properties:

- no ``content_encoding`` and JSON (or no content type): pydantic validates the body in
  one step, as it always did; one dict lookup decides it, no codec is consulted;
- a ``content_encoding`` (``gzip``, ``deflate``) is undone first, bounded by the App's
  ``max_decompressed_size``;
- then the codec of the content type decodes the body into data that pydantic validates;
  a content type no codec handles is a :class:`~burrowmq.DecodeError` naming it (the
  message is dead-lettered, not retried).

A handler asking for ``bytes`` gets the body (decompressed) whatever its content type,
and one asking for ``str`` gets it as UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from burrowmq.exceptions import ConfigurationError, DecodeError, EncodeError
from burrowmq.framework.codec import (
    JSON,
    BytesCodec,
    Codec,
    JsonCodec,
    MsgPackCodec,
    TextCodec,
    decode_plain,
    describe_validation_error,
    encode,
)
from burrowmq.framework.compression import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    check_limit,
    compress,
    decompress,
)

__all__ = ["BUILT_IN", "BodyDecoder", "Codecs", "media_type"]

BodyDecoder = Callable[[bytes, str | None, str | None], Any]
"""``decode(body, content_type, content_encoding)``: the value a handler asked for."""

BUILT_IN: tuple[Codec, ...] = (JsonCodec(), MsgPackCodec(), TextCodec(), BytesCodec())
"""The codecs every App has, after its own."""

_JSON_SUFFIX = "+json"


def media_type(content_type: str) -> str:
    """The media type of a ``content_type`` property: lower case, without parameters."""
    return content_type.partition(";")[0].strip().lower()


class Codecs:
    """An App's codecs, its own first, then the built-in ones.

    Args:
        codecs: codecs consulted before the built-in ones (:class:`~burrowmq.Codec`).
        max_decompressed_size: the most bytes a compressed body may inflate to; past it
            the message is refused as invalid (a decompression bomb).

    Raises:
        ConfigurationError: an object that is not a codec, or a bad limit.
    """

    __slots__ = ("_by_type", "_json", "codecs", "max_decompressed_size")

    def __init__(
        self,
        codecs: Sequence[Codec] = (),
        *,
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    ) -> None:
        for codec in codecs:
            types = getattr(codec, "content_types", None)
            if (
                not isinstance(codec, Codec)
                or not isinstance(types, tuple | list)
                or not all(isinstance(t, str) and t for t in types)
            ):
                raise ConfigurationError(
                    f"App(codecs=...) takes codecs (content_types, encode, decode), got {codec!r}"
                )
        self.codecs: tuple[Codec, ...] = (*codecs, *BUILT_IN)
        self.max_decompressed_size = check_limit(max_decompressed_size)
        by_type: dict[str, Codec] = {}
        for codec in self.codecs:
            for name in codec.content_types:
                by_type.setdefault(media_type(name), codec)
        self._by_type = by_type
        self._json = by_type[JSON]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Codecs)
            and other.codecs == self.codecs
            and other.max_decompressed_size == self.max_decompressed_size
        )

    def __hash__(self) -> int:
        return hash((self.codecs, self.max_decompressed_size))

    def codec_for(self, content_type: str) -> Codec | None:
        """The codec of ``content_type`` (any ``+json`` type is JSON's), or ``None``."""
        media = media_type(content_type)
        codec = self._by_type.get(media)
        if codec is None and media.endswith(_JSON_SUFFIX):
            codec = self._json
        return codec

    def decoder(self, annotation: Any) -> BodyDecoder:
        """The decoder of bodies for a handler's payload ``annotation``, built once.

        Args:
            annotation: ``bytes``, ``str``, a model or any type pydantic validates;
                ``None`` (or ``Any``) decodes to plain data.
        """
        limit = self.max_decompressed_size
        if annotation is bytes:

            def decode_bytes(body: bytes, content_type: str | None, encoding: str | None) -> Any:
                return body if encoding is None else decompress(body, encoding, limit)

            return decode_bytes
        if annotation is str:

            def decode_str(body: bytes, content_type: str | None, encoding: str | None) -> Any:
                if encoding is not None:
                    body = decompress(body, encoding, limit)
                try:
                    return body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DecodeError(f"body is not valid UTF-8 text (byte {exc.start})") from None

            return decode_str
        validate_json, validate_python = _validators(annotation)
        json_codec = self._json
        builtin_json = isinstance(json_codec, JsonCodec)
        # The common case costs one dict lookup: JSON, or no content type at all.
        direct = {None: validate_json, JSON: validate_json}
        codec_for = self.codec_for

        def decode(body: bytes, content_type: str | None, encoding: str | None) -> Any:
            if encoding is None:
                step = direct.get(content_type)
                if step is not None:
                    return step(body)
            else:
                body = decompress(body, encoding, limit)
            codec = codec_for(content_type) if content_type else json_codec
            if codec is None:
                raise DecodeError(
                    f"content type {str(content_type)[:100]!r} is not one this service "
                    "decodes (no codec handles it; add one with App(codecs=[...]))"
                )
            if codec is json_codec and builtin_json:
                return validate_json(body)
            data = _run_decode(codec, body)
            if isinstance(data, str | bytes):
                # Text and bytes hold no structure: a typed payload parses them as JSON.
                return validate_json(data)
            return validate_python(data)

        return decode

    def decode_plain(self, body: bytes, content_type: str | None, encoding: str | None) -> Any:
        """Decode a body by its encoding and content type alone, to plain data.

        JSON, and no content type, give JSON data; text a ``str``; any other type with a
        codec that codec's data; anything else the (decompressed) bytes.

        Raises:
            DecodeError: the body is not what its properties say.
        """
        if encoding is not None:
            body = decompress(body, encoding, self.max_decompressed_size)
        if content_type is None or content_type == JSON:
            return decode_plain(body, content_type)
        codec = self.codec_for(content_type)
        if codec is None or (codec is self._json and isinstance(codec, JsonCodec)):
            return decode_plain(body, content_type)
        return _run_decode(codec, body)

    def encode(
        self, value: Any, *, content_type: str | None = None, compress_with: str | None = None
    ) -> tuple[bytes, str, str | None]:
        """Encode ``value`` for the wire as ``content_type`` says, compressed if asked.

        ``bytes`` and ``str`` are taken as encoded already: sent as they are (text as
        UTF-8), labelled with ``content_type``. Other values are encoded by the codec of
        ``content_type`` (JSON when none is given, or when no codec handles it).

        Returns:
            The body, its content type and its content encoding (``None``: none).

        Raises:
            EncodeError: the value cannot be encoded.
        """
        codec = None if content_type is None else self.codec_for(content_type)
        if codec is None or isinstance(value, bytes | bytearray | memoryview | str):
            data, chosen = encode(value)
        else:
            data, chosen = _run_encode(codec, value), codec.content_types[0]
        if compress_with is not None:
            data = compress(data, compress_with)
        return data, content_type or chosen, compress_with


def _validators(annotation: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Validate-from-JSON and validate-from-data for ``annotation``, errors made ours."""
    if annotation is None:
        annotation = Any
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        from_json: Callable[[Any], Any] = annotation.model_validate_json
        from_data: Callable[[Any], Any] = annotation.model_validate
    else:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        from_json, from_data = adapter.validate_json, adapter.validate_python

    def validate_json(body: Any) -> Any:
        try:
            return from_json(body)
        except ValidationError as exc:
            raise DecodeError(describe_validation_error(exc), errors=_plain(exc)) from None

    def validate_python(data: Any) -> Any:
        try:
            return from_data(data)
        except ValidationError as exc:
            raise DecodeError(describe_validation_error(exc), errors=_plain(exc)) from None

    return validate_json, validate_python


def _plain(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False)
    ]


def _run_decode(codec: Codec, body: bytes) -> Any:
    try:
        return codec.decode(body)
    except DecodeError:
        raise
    except Exception as exc:  # a user's codec: its errors become ours
        raise DecodeError(
            f"{type(codec).__name__} could not decode the body ({type(exc).__name__}: {exc})"
        ) from None


def _run_encode(codec: Codec, value: Any) -> bytes:
    try:
        data = codec.encode(value)
    except EncodeError:
        raise
    except Exception as exc:  # a user's codec: its errors become ours
        raise EncodeError(
            f"{type(codec).__name__} could not encode a {type(value).__name__} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EncodeError(
            f"{type(codec).__name__}.encode returned {type(data).__name__}, not bytes"
        )
    return bytes(data)
