"""The RPC wire protocol: how requests, replies and remote errors travel.

A request is an ordinary AMQP message; its body is the payload alone, encoded like any
burrowmq message (JSON for models and plain data, ``str`` as text, ``bytes`` as they
are; or in the codec and compression the caller named, to which the server answers in
kind), so it can be read with any AMQP tool and validated directly by the server:

=================  ===============================================================
exchange           ``burrowmq.rpc`` (topic)
routing key        the procedure name, ``<service>.<method>``
correlation_id     unique per call on the caller's channel (also the message_id)
reply_to           ``amq.rabbitmq.reply-to`` (RabbitMQ's direct reply-to)
expiration         the milliseconds left before the caller gives up
headers            ``x-rpc-deadline``: that moment, in milliseconds since the epoch
delivery_mode      1 (transient: a request is worthless after its caller's timeout)
=================  ===============================================================

A reply is published to the default exchange with ``routing_key`` = the request's
``reply_to`` and the same ``correlation_id``. Its ``type`` property tells the outcome:

- ``burrowmq.rpc.reply``: the body is the handler's result, shaped by its return
  annotation and encoded as above (``content_type`` says how).
- ``burrowmq.rpc.error``: the body is a JSON :class:`ErrorEnvelope`:
  ``{"type": "OutOfStock", "module": "shop.stock", "message": "...", "details": ...,
  "traceback": ...}``. ``type`` is the exception class's plain name (never a qualname
  such as ``reserve.<locals>.OutOfStock``); ``module`` is the module that defines it, or
  ``null`` for the server's own error types. ``details`` is structured data or ``null``
  (for instance pydantic's field errors when the request failed validation);
  ``traceback`` is ``null`` unless the server enables it. Never a pickle.

  Compatibility: ``module`` was added later. Older clients ignore it (unknown keys are
  ignored); replies of older servers lack it, and their ``type`` may be a qualname,
  which a newer client cuts to the plain name (the last dotted part).

Error types the server itself produces (besides the handler's own exception names):
:data:`VALIDATION_ERROR` (the request did not validate; the message names the fields),
:data:`UNKNOWN_PROCEDURE` (the service has no such method), :data:`REPLY_INVALID` (the
handler's result does not fit its return annotation).
"""

from __future__ import annotations

import time
from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError

from burrowmq.exceptions import RemoteError
from burrowmq.routing.procedure import RPC_EXCHANGE, Procedure

__all__ = [
    "ERROR_TYPE",
    "HEADER_DEADLINE",
    "REPLY_INVALID",
    "REPLY_TYPE",
    "RPC_EXCHANGE",
    "UNKNOWN_PROCEDURE",
    "VALIDATION_ERROR",
    "ErrorEnvelope",
    "Procedure",
    "deadline_passed",
    "decode_error",
    "encode_error",
    "now_ms",
]

HEADER_DEADLINE = "x-rpc-deadline"
REPLY_TYPE = "burrowmq.rpc.reply"
ERROR_TYPE = "burrowmq.rpc.error"

VALIDATION_ERROR = "ValidationError"
UNKNOWN_PROCEDURE = "UnknownProcedure"
REPLY_INVALID = "ReplyInvalid"

_MAX_MESSAGE = 4000
_MAX_TRACEBACK = 20000


class ErrorEnvelope(BaseModel):
    """The body of an error reply.

    Attributes:
        type: the remote exception's plain class name (``"ValueError"``), or one of the
            server's own: ``ValidationError``, ``UnknownProcedure``, ``ReplyInvalid``.
        module: the module defining the exception class (``"builtins"``), ``None`` for
            the server's own types and in replies of servers older than this field.
        message: the exception's message.
        details: structured details (JSON data), or ``None``.
        traceback: the remote traceback, only when the server enables it.
    """

    type: str
    module: str | None = None
    message: str
    details: Any = None
    traceback: str | None = None


def now_ms() -> int:
    """The wall-clock time in milliseconds since the epoch (deadlines use it)."""
    return time.time_ns() // 1_000_000


def deadline_passed(headers: dict[str, Any], now: int | None = None) -> bool:
    """Whether a request's ``x-rpc-deadline`` has passed (no header: never).

    Args:
        headers: the request's headers.
        now: the current time in milliseconds since the epoch (default: now).
    """
    deadline = headers.get(HEADER_DEADLINE)
    if not isinstance(deadline, int) or isinstance(deadline, bool):
        return False
    return (now_ms() if now is None else now) > deadline


def encode_error(
    type: str,
    message: str,
    *,
    module: str | None = None,
    details: Any = None,
    traceback: str | None = None,
) -> bytes:
    """Encode an error reply's body.

    ``details`` that cannot be sent as JSON are replaced by their ``repr``; long
    messages and tracebacks are cut.

    Args:
        type: the exception's plain class name, or one of the server's own types.
        message: the exception's message.
        module: the module defining the exception class (``None`` for the server's own).
        details: structured details (JSON data).
        traceback: the handler's traceback, when the server sends them.
    """
    envelope: dict[str, Any] = {
        "type": type,
        "module": module,
        "message": message[:_MAX_MESSAGE],
        "details": details,
        "traceback": traceback[-_MAX_TRACEBACK:] if traceback else None,
    }
    try:
        return pydantic_core.to_json(envelope)
    except pydantic_core.PydanticSerializationError:
        envelope["details"] = repr(details)[:_MAX_MESSAGE]
        return pydantic_core.to_json(envelope)


def decode_error(body: bytes, *, procedure: str, correlation_id: str | None) -> RemoteError:
    """Turn an error reply's body into the :class:`RemoteError` the caller raises.

    A body that is not an envelope still gives a ``RemoteError`` (type
    ``"InvalidErrorReply"``) rather than a decoding crash. A qualname sent by an older
    server (``reserve.<locals>.OutOfStock``) is cut to the plain class name.
    """
    try:
        envelope = ErrorEnvelope.model_validate_json(body)
    except ValidationError:
        envelope = ErrorEnvelope(
            type="InvalidErrorReply",
            message=f"the server sent an error reply that is not an envelope: {body[:200]!r}",
        )
    name = envelope.type.rpartition(".")[2] or envelope.type
    return RemoteError(
        f"{procedure} failed remotely: {name}: {envelope.message}",
        type=name,
        module=envelope.module,
        remote_message=envelope.message,
        procedure=procedure,
        correlation_id=correlation_id,
        details=envelope.details,
        traceback=envelope.traceback,
    )
