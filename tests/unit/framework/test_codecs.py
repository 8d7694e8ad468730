"""The codec registry: content-aware decoders, encoding by content type, compression."""

from __future__ import annotations

import builtins
import gzip
import zlib
from typing import Any

import pytest
from pydantic import BaseModel

from burrowmq import Codec, DecodeError, EncodeError, MsgPackCodec
from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.codecs import Codecs, media_type
from burrowmq.framework.compression import compress, decompress

pytestmark = pytest.mark.unit


class Point(BaseModel):
    x: int


class TestDecoder:
    """``Codecs.decoder`` decodes by content type and encoding."""

    def test_json_fast_path_and_charset(self) -> None:
        """JSON, no content type and JSON with parameters all validate the model."""
        decode = Codecs().decoder(Point)
        assert decode(b'{"x": 1}', "application/json", None) == Point(x=1)
        assert decode(b'{"x": 2}', None, None) == Point(x=2)
        assert decode(b'{"x": 3}', "Application/JSON; charset=utf-8", None) == Point(x=3)

    def test_text_and_octet_stream_carry_json_to_a_typed_payload(self) -> None:
        """text/plain and octet-stream bodies parse as JSON for a model, as they always did."""
        decode = Codecs().decoder(Point)
        assert decode(b'{"x": 1}', "text/plain; charset=utf-8", None) == Point(x=1)
        assert decode(b'{"x": 1}', "application/octet-stream", None) == Point(x=1)

    def test_unknown_content_type_names_it(self) -> None:
        """A content type no codec handles is a DecodeError naming it."""
        with pytest.raises(DecodeError, match="'application/xml'"):
            Codecs().decoder(Point)(b"<p/>", "application/xml", None)

    def test_bytes_and_str_ignore_the_content_type_but_not_the_encoding(self) -> None:
        """``bytes`` gets the inflated body whatever its type; ``str`` the text."""
        codecs = Codecs()
        body = gzip.compress(b"hello")
        assert codecs.decoder(bytes)(body, "application/xml", "gzip") == b"hello"
        assert codecs.decoder(str)(body, "image/png", "gzip") == "hello"

    def test_user_codec_errors_become_decode_errors(self) -> None:
        """A user codec's own exception is wrapped into a DecodeError with a reason."""

        class Broken:
            content_types = ("application/x-broken",)

            def encode(self, value: Any) -> bytes:
                raise KeyError(value)

            def decode(self, body: bytes) -> Any:
                raise KeyError("oops")

        codecs = Codecs([Broken()])
        with pytest.raises(DecodeError, match="Broken could not decode"):
            codecs.decoder(Point)(b"", "application/x-broken", None)
        with pytest.raises(EncodeError, match="Broken could not encode"):
            codecs.encode(Point(x=1), content_type="application/x-broken")

    def test_not_a_codec_is_refused(self) -> None:
        """Objects without content_types, encode and decode are refused at configuration."""
        with pytest.raises(ConfigurationError, match="codecs"):
            Codecs([object()])  # type: ignore[list-item]

    def test_builtins_satisfy_the_protocol(self) -> None:
        """The built-in codecs are Codecs."""
        assert all(isinstance(codec, Codec) for codec in Codecs().codecs)


class TestMissingExtra:
    """Without the msgpack extra, msgpack messages fail with a reason naming the extra."""

    def test_decode_and_encode_name_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An ImportError of msgpack becomes DecodeError / EncodeError naming burrowmq[msgpack]."""
        real_import = builtins.__import__

        def no_msgpack(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "msgpack":
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_msgpack)
        with pytest.raises(DecodeError, match=r"burrowmq\[msgpack\]"):
            Codecs().decoder(Point)(b"\x81", "application/msgpack", None)
        with pytest.raises(EncodeError, match=r"burrowmq\[msgpack\]"):
            MsgPackCodec().encode({"x": 1})


class TestEncode:
    """``Codecs.encode`` encodes values by the content type asked for."""

    def test_str_and_bytes_go_as_they_are(self) -> None:
        """Pre-encoded bodies are labelled, not encoded again."""
        codecs = Codecs()
        assert codecs.encode('{"x":1}', content_type="application/json") == (
            b'{"x":1}',
            "application/json",
            None,
        )
        assert codecs.encode(b"\x01", content_type="application/msgpack")[0] == b"\x01"

    def test_compressed(self) -> None:
        """``compress_with`` compresses and names the encoding."""
        data, content_type, encoding = Codecs().encode({"x": 1}, compress_with="gzip")
        assert (gzip.decompress(data), content_type, encoding) == (
            b'{"x":1}',
            "application/json",
            "gzip",
        )


class TestCompression:
    """``decompress`` undoes gzip and deflate, bounded."""

    def test_limit(self) -> None:
        """A body inflating past the limit is refused, the limit named."""
        with pytest.raises(DecodeError, match="100 bytes"):
            decompress(gzip.compress(b"a" * 101), "gzip", 100)
        assert decompress(gzip.compress(b"a" * 100), "gzip", 100) == b"a" * 100

    def test_truncated_and_unknown(self) -> None:
        """A truncated stream and an unknown encoding are DecodeErrors."""
        with pytest.raises(DecodeError, match="truncated"):
            decompress(compress(b"a" * 1000, "gzip")[:-12], "gzip", 10_000)
        with pytest.raises(DecodeError, match="'br'"):
            decompress(b"", "br", 10)

    def test_deflate_zlib_and_raw(self) -> None:
        """Deflate bodies with and without the zlib wrapper inflate."""
        raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        assert decompress(zlib.compress(b"hi"), "deflate", 10) == b"hi"
        assert decompress(raw.compress(b"hi") + raw.flush(), "deflate", 10) == b"hi"

    def test_media_type(self) -> None:
        """Parameters are dropped and case folded."""
        assert media_type("Text/Plain; charset=utf-8") == "text/plain"
