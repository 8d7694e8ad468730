"""Middleware: small async callables wrapped around every handler call, in list order.

A middleware receives the delivery's :class:`~burrowmq.Message` and ``call_next``, and
decides what happens::

    async def timing(message: Message, call_next: CallNext) -> Any:
        started = time.perf_counter()
        try:
            return await call_next()
        finally:
            metrics.observe(message.queue, time.perf_counter() - started)

    app = App([router], middleware=[timing, Idempotency()])

The first in the list is the outermost. The same list wraps the handlers of message
routes and of RPC routes alike. What a middleware returns is the handler's result (an RPC
route replies with it); what it raises counts as the handler's exception (retried per the
route's :class:`~burrowmq.Retry`, then dead-lettered, or sent back as an RPC error;
``Reject`` at once). A middleware that settles the delivery without running the handler
returns :data:`DROPPED`: the delivery is acked, and an RPC request gets no reply.

A middleware wraps each attempt of the handler, after the payload was decoded: a payload
that does not decode is dead-lettered (or answered with a validation error) without
reaching it. The list is composed once per consumer, when the app starts; with no
middleware nothing is composed and the consume path does no work for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.message import Message

__all__ = ["DROPPED", "CallNext", "Chain", "Middleware", "check_middleware", "compose"]

CallNext = Callable[[], Awaitable[Any]]
"""Calls the rest of the chain (the next middleware, finally the handler)."""

Middleware = Callable[[Message, CallNext], Awaitable[Any]]
"""``async def middleware(message, call_next) -> Any``."""

Chain = Callable[[Message, CallNext], Awaitable[Any]]
"""A composed list: ``chain(message, handler_call)`` runs every middleware, then the call."""


class _Dropped:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED: Final[Any] = _Dropped()
"""Returned by a middleware that handled a delivery by dropping it (a duplicate, say):
it is acked without running the handler, and an RPC request gets no reply."""


def check_middleware(middleware: Sequence[Middleware]) -> tuple[Middleware, ...]:
    """Validate a middleware list, returning it as a tuple.

    Raises:
        ConfigurationError: ``middleware`` is not a sequence of callables.
    """
    candidate: object = middleware
    if isinstance(candidate, str | bytes) or not isinstance(candidate, Sequence):
        raise ConfigurationError(
            f"middleware= takes a list of callables, got {type(middleware).__name__}"
        )
    for item in middleware:
        if not callable(item):
            raise ConfigurationError(
                f"middleware= takes async callables (message, call_next) -> result, got {item!r}"
            )
    return tuple(middleware)


def _last(message: Message, call: CallNext) -> Awaitable[Any]:
    return call()


def _link(middleware: Middleware, inner: Chain) -> Chain:
    def run(message: Message, call: CallNext) -> Awaitable[Any]:
        return middleware(message, lambda: inner(message, call))

    return run


def compose(middleware: Sequence[Middleware]) -> Chain | None:
    """Compose ``middleware`` into one chain (the first item outermost).

    Returns:
        The chain, or ``None`` for an empty list, so that callers skip it entirely.

    Raises:
        ConfigurationError: an item is not callable.
    """
    items = check_middleware(middleware)
    if not items:
        return None
    chain: Chain = _last
    for item in reversed(items):
        chain = _link(item, chain)
    return chain
