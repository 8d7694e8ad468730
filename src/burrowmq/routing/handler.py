"""Handler: what a handler function asks for, worked out once per route.

The first parameter's annotation decides how the body is decoded; a parameter
annotated :class:`~burrowmq.Message` receives the delivery's metadata. All of this is
inspected once, when the route is made, never per message.

A payload parameter without an annotation is decoded as ``Any`` would be (JSON into
Python data, unvalidated), and a warning says so once per handler: a forgotten
annotation should not silently switch validation off. Annotate it ``Any`` to say that
is meant, ``bytes`` for the raw body.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.codec import Decoder, decoder_for
from burrowmq.framework.log import get_logger
from burrowmq.framework.message import Message

__all__ = ["Handler", "HandlerFunc"]

_log = get_logger()
_warned: set[str] = set()  # handlers already warned about an unannotated payload

HandlerFunc = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Handler:
    """A handler function with its decoding and calling convention resolved.

    Attributes:
        func: the user's async function.
        name: ``module.qualname``, for logs and graphs.
        payload_type: the annotation of the payload parameter (``Any`` when absent).
        decode: turns a body into the payload value.
        returns: the return annotation (``None`` when absent), for RPC replies.
        wants_message: whether a parameter is annotated ``Message``.
        call: ``call(value, message)`` awaits the function with the right arguments.
    """

    func: HandlerFunc
    name: str
    payload_type: Any
    decode: Decoder
    returns: Any
    wants_message: bool
    call: Callable[[Any, Message], Awaitable[Any]]

    @classmethod
    def inspect(cls, func: HandlerFunc) -> Handler:
        """Resolve ``func``'s parameters and annotations.

        Raises:
            ConfigurationError: ``func`` is not an async function, or has parameters
                burrowmq cannot fill.
        """
        name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)!s}"
        if not inspect.iscoroutinefunction(func):
            raise ConfigurationError(f"handler {name} must be an async function (async def)")
        try:
            hints = typing.get_type_hints(func)
        except Exception as exc:  # annotations that do not resolve
            raise ConfigurationError(
                f"cannot resolve the annotations of handler {name}: {exc}"
            ) from None
        params = list(inspect.signature(func).parameters.values())
        payload_name: str | None = None
        payload_type: Any = Any
        message_names: list[str] = []
        for index, param in enumerate(params):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = hints.get(param.name, inspect.Parameter.empty)
            if annotation is Message:
                message_names.append(param.name)
            elif index == 0 and payload_name is None:
                payload_name = param.name
                payload_type = Any if annotation is inspect.Parameter.empty else annotation
                if annotation is inspect.Parameter.empty and name not in _warned:
                    _warned.add(name)
                    _log.warning(
                        "handler_payload_unannotated",
                        handler=name,
                        parameter=param.name,
                        decoded_as="JSON data, not validated (as Any)",
                        hint=f"annotate {param.name!r}: a pydantic model or type to "
                        "validate, Any to keep this, bytes for the raw body",
                    )
            elif param.default is inspect.Parameter.empty:
                raise ConfigurationError(
                    f"handler {name} has parameter {param.name!r} that burrowmq cannot fill: "
                    "only the payload (first) and parameters annotated Message are passed"
                )
        returns = hints.get("return")
        if payload_name is None:  # only Message parameters: the body is not decoded
            payload_type, decode = bytes, decoder_for(bytes)
        else:
            decode = decoder_for(None if payload_type is Any else payload_type)
        call = _caller(func, params, payload_name, message_names)
        return cls(func, name, payload_type, decode, returns, bool(message_names), call)


def _caller(
    func: HandlerFunc,
    params: list[inspect.Parameter],
    payload_name: str | None,
    message_names: list[str],
) -> Callable[[Any, Message], Awaitable[Any]]:
    positional_payload = (
        bool(params)
        and payload_name == params[0].name
        and params[0].kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    )
    # The common shapes get a direct call; anything else goes through keywords.
    if positional_payload and not message_names:
        return lambda value, message: func(value)
    if (
        positional_payload
        and len(message_names) == 1
        and len(params) >= 2
        and params[1].name == message_names[0]
        and params[1].kind is not inspect.Parameter.KEYWORD_ONLY
    ):
        return lambda value, message: func(value, message)
    # General shape: positional-only parameters go by position, the rest by keyword.
    positional: list[str] = []
    keywords: list[tuple[str, str]] = []
    for param in params:
        if param.name == payload_name:
            source = "payload"
        elif param.name in message_names:
            source = "message"
        else:
            continue  # has a default
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(source)
        else:
            keywords.append((param.name, source))
    plan_positional = tuple(positional)
    plan_keywords = tuple(keywords)

    def call(value: Any, message: Message) -> Awaitable[Any]:
        pick = {"payload": value, "message": message}
        args = [pick[source] for source in plan_positional]
        kwargs = {name: pick[source] for name, source in plan_keywords}
        return func(*args, **kwargs)

    return call
