"""Handler: what a handler function asks for, worked out once per route.

The first parameter's annotation decides how the body is decoded; a parameter
annotated :class:`~burrowmq.Message` receives the delivery's metadata; a parameter named
by a ``{name}`` word of the route's key receives that word
(:mod:`burrowmq.routing.key_pattern`); a parameter annotated
``Annotated[T, Depends(factory)]`` (or ``App``) is filled by its dependency graph
(:mod:`burrowmq.routing.depends`). All of this is inspected once, when the route is
made, never per message.

A batch handler (a route with ``batch=Batch(...)``) takes ``list[T]``: each message is
decoded as ``T``; a parameter annotated ``list[Message]`` receives their metadata.

Annotations resolve as pydantic resolves them: in the handler's module, and also, under
``from __future__ import annotations``, among the local names of the function that
decorated the handler (a model defined inside a function, or a test).

A payload parameter without an annotation is decoded as ``Any`` would be (JSON into
Python data, unvalidated), and a warning says so once per handler: a forgotten
annotation should not silently switch validation off. Annotate it ``Any`` to say that
is meant, ``bytes`` for the raw body.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.codec import Decoder, decoder_for
from burrowmq.framework.log import get_logger
from burrowmq.framework.message import Message
from burrowmq.routing.depends import (
    PAYLOAD,
    DependencyPlan,
    Depends,
    RunningApp,
    depends_of,
    inspect_node,
)

__all__ = ["Handler", "HandlerFunc"]

_log = get_logger()
_warned: set[str] = set()  # handlers already warned about an unannotated payload

HandlerFunc = Callable[..., Awaitable[Any]]
KeyedCall = Callable[[Mapping[str, Any], Any, Message], Awaitable[Any]]


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
        call: ``call(value, message)`` awaits the function with the right arguments
            (for a handler without routing-key parameters).
        key_types: the annotation of each routing-key parameter (``str`` when absent).
        keyed: ``keyed(words, value, message)``, for a handler with routing-key
            parameters (``None`` without, and for a handler with dependencies).
        dependencies: the handler's dependency graph, bound to the running app when
            the app starts (``None``: the handler takes no dependencies).
            parameters (``None`` without).
        batch: a batch handler: ``payload_type`` is the type of each element, and
            ``call(values, messages)`` takes lists.
    """

    func: HandlerFunc
    name: str
    payload_type: Any
    decode: Decoder
    returns: Any
    wants_message: bool
    call: Callable[[Any, Message], Awaitable[Any]]
    key_types: Mapping[str, Any] = field(default_factory=dict)
    keyed: KeyedCall | None = None
    dependencies: DependencyPlan | None = None
    batch: bool = False

    @classmethod
    def inspect(
        cls, func: HandlerFunc, *, key_params: tuple[str, ...] = (), batch: bool = False
    ) -> Handler:
        """Resolve ``func``'s parameters and annotations.

        Args:
            func: the handler.
            key_params: the ``{name}`` parameters of the route's routing key, passed to
                the handler's parameters of those names.
            batch: ``func`` is a batch handler: it takes ``list[T]`` (and
                ``list[Message]``).

        Raises:
            ConfigurationError: ``func`` is not an async function, has parameters
                burrowmq cannot fill, or lacks a parameter the routing key names.
        """
        name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)!s}"
        if not inspect.iscoroutinefunction(func):
            raise ConfigurationError(f"handler {name} must be an async function (async def)")
        hints = _hints(func, name)
        injected = False  # a parameter is filled by a dependency or is the App
        params = list(inspect.signature(func).parameters.values())
        payload_name: str | None = None
        payload_type: Any = Any
        message_names: list[str] = []
        key_types: dict[str, Any] = {}
        for index, param in enumerate(params):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = hints.get(param.name, inspect.Parameter.empty)
            if param.name in key_params:
                key_types[param.name] = str if annotation is inspect.Parameter.empty else annotation
            elif batch and _is_message_list(annotation):
                message_names.append(param.name)
            elif annotation is Message:
                if batch:
                    raise ConfigurationError(
                        f"batch handler {name}: parameter {param.name!r} receives the "
                        "messages of a batch: annotate it list[Message]"
                    )
                message_names.append(param.name)
            elif _injected(func, name, param, annotation):
                injected = True
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
                    "only the payload (first), parameters annotated Message or App, "
                    "dependencies (Annotated[T, Depends(factory)]) and the {name} words "
                    "of the route's routing key are passed"
                    + (f" (the key names {', '.join(key_params)})" if key_params else "")
                )
        plan = None
        if injected:
            root = inspect_node(
                func,
                handler=name,
                key_names=key_params,
                hints=_both_hints,
                sources={payload_name: PAYLOAD} if payload_name is not None else {},
            )
            plan = DependencyPlan.build(root, key_names=key_params, hints=_both_hints)
            for key, kind in plan.key_types.items():
                key_types.setdefault(key, kind)
        for key_param in key_params:
            if key_param not in key_types:
                raise ConfigurationError(
                    f"handler {name}: the routing key names parameter {{{key_param}}}, "
                    f"but the handler has no parameter {key_param!r} to pass it to"
                )
        returns = hints.get("return")
        if batch and payload_name is not None:
            payload_type = _element_type(name, payload_name, payload_type)
        if payload_name is None:  # only Message parameters: the body is not decoded
            payload_type, decode = bytes, decoder_for(bytes)
        else:
            decode = decoder_for(None if payload_type is Any else payload_type)
        wants = bool(message_names)
        if plan is not None:
            return cls(
                func,
                name,
                payload_type,
                decode,
                returns,
                wants or plan.wants_message,
                _needs_binding(name),
                key_types,
                None,
                plan,
            )
        if key_types:
            keyed = _keyed_caller(func, params, payload_name, message_names, key_types)
            call = _needs_words(name)
            return cls(func, name, payload_type, decode, returns, wants, call, key_types, keyed)
        call = _caller(func, params, payload_name, message_names)
        return cls(func, name, payload_type, decode, returns, wants, call, batch=batch)


def _is_message_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin in (list, Sequence) and typing.get_args(annotation) == (Message,)


def _element_type(name: str, parameter: str, annotation: Any) -> Any:
    """The type of each message of a batch handler's ``list[T]`` payload parameter.

    Raises:
        ConfigurationError: the annotation is not a list.
    """
    if annotation is Any or annotation is list:
        return Any
    if typing.get_origin(annotation) in (list, Sequence):
        args = typing.get_args(annotation)
        return args[0] if args else Any
    raise ConfigurationError(
        f"batch handler {name}: parameter {parameter!r} receives the batch: annotate it "
        f"list[T] (T: what each message decodes to), not {annotation!r}"
    )


def _injected(func: HandlerFunc, name: str, param: inspect.Parameter, annotation: Any) -> bool:
    """Whether a parameter is filled by a dependency (``Depends``) or is the App."""
    if isinstance(annotation, type) and issubclass(annotation, RunningApp):
        return True
    if isinstance(param.default, Depends):
        return True
    extra = _hints(func, name, extras=True).get(param.name)
    return depends_of(extra, None) is not None


def _both_hints(func: Callable[..., Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dependency's annotations: plain, and with their ``Annotated`` metadata."""
    return _hints(func, name), _hints(func, name, extras=True)


def _hints(func: Callable[..., Any], name: str, *, extras: bool = False) -> dict[str, Any]:
    """``func``'s annotations, resolved in its module, else also where it was decorated.

    Raises:
        ConfigurationError: an annotation names something neither place defines.
    """
    try:
        return typing.get_type_hints(func, include_extras=extras)
    except NameError as exc:
        # A name the module lacks may be local to the function that decorated the
        # handler, where pydantic would find it too (looked up on this failure only).
        localns = _decorating_namespace()
        if localns is None:
            raise _unresolved(name, exc) from None
        try:
            return typing.get_type_hints(func, localns=localns, include_extras=extras)
        except Exception as again:  # still not resolvable
            raise _unresolved(name, again) from None
    except Exception as exc:  # annotations that do not evaluate
        raise _unresolved(name, exc) from None


def _unresolved(name: str, exc: Exception) -> ConfigurationError:
    return ConfigurationError(f"cannot resolve the annotations of handler {name}: {exc}")


def _decorating_namespace() -> dict[str, Any] | None:
    """The local names of the first caller outside burrowmq: where the handler was
    decorated (or its Route made)."""
    frame: FrameType | None = sys._getframe(1)
    try:
        while frame is not None:
            module = frame.f_globals.get("__name__", "")
            if module != "burrowmq" and not module.startswith("burrowmq."):
                return dict(frame.f_locals)
            frame = frame.f_back
        return None
    finally:
        del frame  # frames hold their locals alive


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


def _needs_binding(name: str) -> Callable[[Any, Message], Awaitable[Any]]:
    def call(value: Any, message: Message) -> Awaitable[Any]:
        raise ConfigurationError(
            f"handler {name} takes dependencies: it is called through its plan, "
            "bound when the app starts"
        )

    return call


def _needs_words(name: str) -> Callable[[Any, Message], Awaitable[Any]]:
    def call(value: Any, message: Message) -> Awaitable[Any]:
        raise ConfigurationError(
            f"handler {name} takes routing-key parameters: it is called through keyed()"
        )

    return call


def _keyed_caller(
    func: HandlerFunc,
    params: list[inspect.Parameter],
    payload_name: str | None,
    message_names: list[str],
    key_names: Collection[str],
) -> KeyedCall:
    """``keyed(words, value, message)``: the general shape, with the key's words."""
    positional: list[str] = []
    keywords: list[tuple[str, str]] = []
    for param in params:
        if param.name == payload_name:
            source = ":payload"
        elif param.name in message_names:
            source = ":message"
        elif param.name in key_names:
            source = param.name
        else:
            continue  # has a default (or collects *args / **kwargs)
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(source)
        else:
            keywords.append((param.name, source))
    plan_positional = tuple(positional)
    plan_keywords = tuple(keywords)

    def keyed(words: Mapping[str, Any], value: Any, message: Message) -> Awaitable[Any]:
        pick = {**words, ":payload": value, ":message": message}
        args = [pick[source] for source in plan_positional]
        kwargs = {name: pick[source] for name, source in plan_keywords}
        return func(*args, **kwargs)

    return keyed
