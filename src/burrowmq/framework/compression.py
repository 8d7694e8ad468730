"""Compression: the ``content_encoding`` of a body, undone before decoding and applied
when publishing.

``gzip`` and ``deflate`` (zlib-wrapped, as HTTP means it; a raw deflate stream is
accepted too) are understood. Several AMQP clients write a character set into
``content_encoding`` (kombu, and so Celery, sends ``utf-8``; ``binary`` for bytes): such
values name no compression and leave the body as it is.

Decompression is bounded: a body that would inflate past the limit (a decompression
bomb: a few kilobytes that expand to gigabytes) is refused with a :class:`DecodeError`
once the limit is reached, without ever holding more than the limit in memory.
"""

from __future__ import annotations

import zlib

from burrowmq.exceptions import ConfigurationError, DecodeError, EncodeError

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "check_compress",
    "check_limit",
    "compress",
    "decompress",
]

COMPRESSIONS = ("gzip", "deflate")
"""The ``content_encoding`` values burrowmq compresses with and decompresses."""

DEFAULT_MAX_DECOMPRESSED_SIZE = 64 * 1024 * 1024
"""The most bytes a compressed body may inflate to by default (64 MiB)."""

# content_encoding values that name a character set or no transformation at all.
_IDENTITY = frozenset(
    {"", "identity", "utf-8", "utf8", "binary", "ascii", "us-ascii", "7bit", "8bit"}
)
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def check_compress(value: str | None, where: str) -> str | None:
    """``value`` if it names a compression burrowmq applies (or is ``None``).

    Raises:
        ConfigurationError: any other value.
    """
    if value is None or value in COMPRESSIONS:
        return value
    raise ConfigurationError(
        f"{where}: compress= takes {' or '.join(map(repr, COMPRESSIONS))} or None, got {value!r}"
    )


def check_limit(value: int) -> int:
    """``value`` if it is a positive number of bytes.

    Raises:
        ConfigurationError: anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"App(max_decompressed_size=...) takes a positive number of bytes, got {value!r}"
        )
    return value


def compress(body: bytes, encoding: str) -> bytes:
    """``body`` compressed as ``encoding`` (``gzip`` or ``deflate``).

    Raises:
        EncodeError: an encoding burrowmq does not compress with.
    """
    if encoding == "gzip":
        packer = zlib.compressobj(wbits=_GZIP_WBITS)
        return packer.compress(body) + packer.flush()
    if encoding == "deflate":
        return zlib.compress(body)
    raise EncodeError(
        f"cannot compress with {encoding!r}: burrowmq knows {', '.join(COMPRESSIONS)}"
    )


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` inflated as its ``content_encoding`` says, to at most ``limit`` bytes.

    Raises:
        DecodeError: an unknown encoding (named), a corrupt or truncated stream, or a
            body that inflates past ``limit`` (the limit is named).
    """
    name = encoding.strip().lower()
    if name in _IDENTITY:
        return body
    if name in ("gzip", "x-gzip"):
        return _inflate(body, _GZIP_WBITS, "gzip", limit)
    if name == "deflate":
        try:
            return _inflate(body, zlib.MAX_WBITS, "deflate", limit)
        except _Corrupt:
            # Some publishers send a raw deflate stream, without the zlib wrapper.
            pass
        try:
            return _inflate(body, -zlib.MAX_WBITS, "deflate", limit)
        except _Corrupt as exc:
            raise DecodeError(exc.reason) from None
    raise DecodeError(
        f"content_encoding {encoding[:60]!r} is not one burrowmq can undo "
        f"(it knows {', '.join(COMPRESSIONS)})"
    )


class _Corrupt(DecodeError):
    """The stream is not valid for the tried format."""


def _inflate(body: bytes, wbits: int, name: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=wbits)
    try:
        # One bounded step: never more than limit + 1 bytes out, however small the input.
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _Corrupt(f"the body is not valid {name} data ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise DecodeError(
            f"the {name} body inflates past the limit of {limit} bytes "
            "(App(max_decompressed_size=...)); refused as a possible decompression bomb"
        )
    if not inflater.eof:
        raise _Corrupt(f"the {name} body is truncated (the stream does not end)")
    return out
