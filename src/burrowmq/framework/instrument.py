"""Instruments: what metrics, tracing and health observe of an App, as plain hooks.

An :class:`Instrument` overrides the hooks it cares about; the App composes the ones
it was given (``App(instrumentation=[...])``) into one :class:`Hooks`, which calls each
hook only on the instruments that override it. With no instruments there is no Hooks at
all (``None``) and the hot paths do no work for it.

Hooks are called synchronously, on the event loop, and must not block or raise (an
instrument's failure is logged and ignored: it never fails a delivery or a publish).
The two tracing hooks return context managers that wrap the operation.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Properties

__all__ = ["Hooks", "Instrument", "Watched", "compose_instruments"]

_log = get_logger()

OUTCOMES_CONSUMED = ("acked", "retried", "dead_lettered", "rejected")
OUTCOMES_PUBLISHED = ("confirmed", "nacked", "unroutable", "lost")
OUTCOMES_CALLED = ("ok", "remote_error", "timeout", "no_route")


class Watched(Protocol):
    """A running consumer, as instruments see it: its queue and its handlers running now."""

    @property
    def queue(self) -> str: ...

    @property
    def in_flight(self) -> int: ...


class Instrument:
    """The base of instruments: every hook does nothing; override those you observe."""

    HOOKS: ClassVar[tuple[str, ...]] = (
        "delivery_settled",
        "handling",
        "consumer_started",
        "consumer_stopped",
        "published",
        "called",
        "recovered",
        "tracing_publish",
        "tracing_delivery",
    )

    def delivery_settled(self, queue: str, handler: str, outcome: str, seconds: float) -> None:
        """A delivery of ``queue`` was settled: ``acked``, ``retried``, ``dead_lettered`` or
        ``rejected`` (invalid or ``Reject``); ``seconds`` its handler took (0 if not run)."""

    def handling(self, queue: str, delta: int) -> None:
        """A handler of ``queue`` started (``+1``) or finished (``-1``).

        Two calls per message: an instrument that only reports how many handlers run
        reads ``in_flight`` of the consumers it was given by :meth:`consumer_started`
        instead, when it is asked.
        """

    def consumer_started(self, consumer: Watched) -> None:
        """A consumer started (``consumer.queue``; ``consumer.in_flight`` stays current)."""

    def consumer_stopped(self, consumer: Watched) -> None:
        """A consumer given to :meth:`consumer_started` stopped."""

    def published(self, exchange: str, outcome: str, seconds: float) -> None:
        """A publish ended: ``confirmed``, ``nacked``, ``unroutable`` or ``lost``."""

    def called(self, procedure: str, outcome: str, seconds: float) -> None:
        """An RPC call ended: ``ok``, ``remote_error``, ``timeout`` or ``no_route``."""

    def recovered(self, role: str) -> None:
        """A connection (``consume`` or ``publish``) was recovered after a loss."""

    def tracing_publish(
        self, exchange: str, routing_key: str, properties: Properties
    ) -> contextlib.AbstractContextManager[Any]:
        """Wrap one publish (it may add headers to ``properties`` before it is sent)."""
        return contextlib.nullcontext()

    def tracing_delivery(
        self, queue: str, handler: str, exchange: str, routing_key: str, properties: Properties
    ) -> contextlib.AbstractContextManager[Any]:
        """Wrap one handler attempt of a delivery; an exception raised inside is recorded."""
        return contextlib.nullcontext()


def _overrides(instrument: Instrument, name: str) -> bool:
    return getattr(type(instrument), name) is not getattr(Instrument, name)


class Hooks:
    """The App's instruments, composed: each hook calls the instruments overriding it."""

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self.instruments = tuple(instruments)
        self._by_hook = {
            name: tuple(getattr(i, name) for i in self.instruments if _overrides(i, name))
            for name in Instrument.HOOKS
        }
        self.traces = bool(self._by_hook["tracing_publish"] or self._by_hook["tracing_delivery"])
        self._settled = self._by_hook["delivery_settled"]
        self._handling = self._by_hook["handling"]
        self.watches_handling = bool(self._handling)
        """Whether any instrument observes each handler's start and end."""
        self._published = self._by_hook["published"]
        self._called = self._by_hook["called"]
        # The two tracing wrappers: with one instrument tracing (the usual case), its own
        # method, called straight from the publish and delivery paths; with several, all of
        # them nested, the first outermost.
        self.tracing_publish: Callable[[str, str, Properties], AbstractContextManager[Any]] = (
            self._one_or_nested("tracing_publish")
        )
        """Every instrument's publish wrapper (it may add headers to the properties)."""
        self.tracing_delivery: Callable[
            [str, str, str, str, Properties], AbstractContextManager[Any]
        ] = self._one_or_nested("tracing_delivery")
        """Every instrument's wrapper of one handler attempt."""

    def _one_or_nested(self, name: str) -> Callable[..., AbstractContextManager[Any]]:
        hooks = self._by_hook[name]
        if len(hooks) == 1:
            return hooks[0]  # type: ignore[no-any-return]
        return functools.partial(self._nested, name)

    # The per-message hooks loop over their listeners inline: no argument tuple, no
    # lookup by name and no extra call per message (with one instrument, the loop runs once).

    def delivery_settled(self, queue: str, handler: str, outcome: str, seconds: float) -> None:
        """Tell every instrument that observes settled deliveries."""
        for hook in self._settled:
            try:
                hook(queue, handler, outcome, seconds)
            except Exception:  # an instrument never fails the work it observes
                _log.exception("instrument_failed", hook="delivery_settled")

    def handling(self, queue: str, delta: int) -> None:
        """Tell every instrument that observes handlers in flight."""
        for hook in self._handling:
            try:
                hook(queue, delta)
            except Exception:
                _log.exception("instrument_failed", hook="handling")

    def consumer_started(self, consumer: Watched) -> None:
        """Tell every instrument that observes consumers."""
        self._call("consumer_started", consumer)

    def consumer_stopped(self, consumer: Watched) -> None:
        """Tell every instrument that observes consumers."""
        self._call("consumer_stopped", consumer)

    def published(self, exchange: str, outcome: str, seconds: float) -> None:
        """Tell every instrument that observes publishes."""
        for hook in self._published:
            try:
                hook(exchange, outcome, seconds)
            except Exception:
                _log.exception("instrument_failed", hook="published")

    def called(self, procedure: str, outcome: str, seconds: float) -> None:
        """Tell every instrument that observes RPC calls."""
        for hook in self._called:
            try:
                hook(procedure, outcome, seconds)
            except Exception:
                _log.exception("instrument_failed", hook="called")

    def recovered(self, role: str) -> None:
        """Tell every instrument that observes connection recoveries."""
        self._call("recovered", role)

    def _call(self, name: str, *args: Any) -> None:
        for hook in self._by_hook[name]:
            try:
                hook(*args)
            except Exception:  # an instrument never fails the work it observes
                _log.exception("instrument_failed", hook=name)

    @contextlib.contextmanager
    def _nested(self, name: str, *args: Any) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for hook in self._by_hook[name]:
                stack.enter_context(hook(*args))
            yield


def compose_instruments(instruments: Sequence[Instrument]) -> Hooks | None:
    """One :class:`Hooks` for ``instruments``, or ``None`` when there are none.

    Raises:
        ConfigurationError: an item is not an :class:`Instrument`.
    """
    candidate: object = instruments
    if isinstance(candidate, str | bytes) or not isinstance(candidate, Sequence):
        raise ConfigurationError(
            f"instrumentation= takes a list of instruments, got {type(instruments).__name__}"
        )
    for item in instruments:
        if not isinstance(item, Instrument):
            raise ConfigurationError(
                "instrumentation= takes burrowmq instruments (Prometheus(), "
                f"OpenTelemetry(), or an Instrument subclass), got {item!r}"
            )
    return Hooks(instruments) if instruments else None
