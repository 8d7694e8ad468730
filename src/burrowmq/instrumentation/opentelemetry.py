"""OpenTelemetry tracing of an App, with opentelemetry-api (the ``otel`` extra).

Spans follow OpenTelemetry's messaging semantic conventions: ``publish <exchange>``
(kind PRODUCER) for each publish and RPC request, ``process <queue>`` (kind CONSUMER)
for each handler attempt, with ``messaging.system = rabbitmq``, the destination, the
routing key and the message id. The W3C trace context (``traceparent``, ``tracestate``)
travels in the AMQP headers: a publish puts it there, a delivery's span continues it.
Retries and dead letters are copies of the message, headers and all, so a retried
attempt joins the trace of the original publish; an RPC request made inside a handler
is a child of that handler's span, and the server's span a child of the request.
A failed handler attempt records its exception on its span and sets the span's status.

Per message, two shortcuts keep the cost to the SDK's own. With the default propagator
(W3C trace context, and baggage), a delivery whose only trace header is a plain
version-00 ``traceparent`` has it read here rather than by the propagator (anything else,
a ``tracestate`` or ``baggage`` header among them, goes to the propagator). And when that
parent is not sampled and the tracer's sampler is ``ParentBased`` with its defaults for
unsampled parents (drop, remote or local), no span is made at all: the span would not be
recorded, and the parent's context is made current instead, so what the handler publishes
carries the trace on, unsampled, as it would with the SDK's non-recording span (the only
difference: downstream sees the upstream span's id as its parent rather than that of a
span nobody recorded).

Under the API's no-op tracer (a ``NoOpTracerProvider``, or the global provider before one
is installed), whose spans record nothing, no name or attributes are made for a span, and
a handler attempt or publish that would only make the span already current current again
runs as it is (a publish still has the current trace context put in its headers). The
global provider's tracer is asked per message which tracer it is, so a provider installed
later is used from then on.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import traceback
from contextvars import ContextVar
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.instrument import Instrument
from burrowmq.framework.transport import Properties
from burrowmq.framework.urls import redact

__all__ = ["OpenTelemetry"]

_SYSTEM = "rabbitmq"


class OpenTelemetry(Instrument):
    """Traces publishes and handler attempts, propagating W3C context in AMQP headers.

    Args:
        tracer_provider: the ``TracerProvider`` to use (default: the global one that
            ``opentelemetry.trace.set_tracer_provider`` installed).

    Raises:
        ConfigurationError: opentelemetry-api is not installed (``burrowmq[otel]``).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import context, propagate, trace
        except ImportError:
            raise ConfigurationError(
                "OpenTelemetry() needs opentelemetry-api: pip install 'burrowmq[otel]'"
            ) from None
        self._trace = trace
        self._context = context
        self._propagate = propagate
        self._tracer: Any = trace.get_tracer(
            "burrowmq", _version(), tracer_provider=tracer_provider
        )
        self._consumer = trace.SpanKind.CONSUMER
        self._producer = trace.SpanKind.PRODUCER
        self._drops_unsampled = _drops_unsampled(self._tracer)
        self._textmap: Any = None
        self._plain = False
        self._global_textmap = propagate.get_global_textmap
        self._span_context = trace.SpanContext
        # The trace flags of every two-digit field, made once (they are immutable ints).
        self._flags = {f"{n:02x}": trace.TraceFlags(n) for n in range(256)}
        # The global provider's tracer stands in for itself until one is installed: each
        # message asks it which tracer it is now (the API's no-op one until then).
        self._proxied = type(self._tracer) is trace.ProxyTracer and isinstance(
            getattr(trace.ProxyTracer, "_tracer", None), property
        )
        # Looked up once: the wrappers call them for every message.
        self._detach = context.detach
        self._inject = propagate.inject
        self._non_recording = trace.NonRecordingSpan
        # The key the API keeps the current span under, as its own setter puts it.
        self._span_key = next(
            iter(trace.set_span_in_context(trace.INVALID_SPAN, context.Context()))
        )
        variable = _variable(context)
        self._attach: Any
        self._reset: Any
        self._current: Any
        self._in_context: Any
        if variable is None:  # another runtime context: the API's functions
            self._attach, self._reset = context.attach, context.detach
            self._current = context.get_current
            self._in_context = trace.set_span_in_context
        else:  # the context variable's own methods: what those functions end in
            self._attach, self._reset = variable.set, variable.reset
            self._current = variable.get
            self._in_context = _span_setter(variable.get, self._span_key, context.Context)
        self._noop = trace.NoOpTracer
        self._invalid = _Current(trace.INVALID_SPAN)

    def tracing_publish(
        self, exchange: str, routing_key: str, properties: Properties
    ) -> contextlib.AbstractContextManager[Any]:
        tracer = self._tracer._tracer if self._proxied else self._tracer
        if type(tracer) is self._noop:
            current = self._current().get(self._span_key)
            if current is None:
                current = self._invalid.span
            if isinstance(current, self._non_recording):
                # The no-op tracer's span would be this one, already current: only the
                # trace context (of an upstream trace, say) is put in the headers.
                return _Injecting(self, current, properties.headers)
        destination = exchange or "(default)"
        attributes = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "publish",
            "messaging.destination.name": destination,
            "messaging.rabbitmq.destination.routing_key": routing_key,
        }
        if properties.message_id:
            attributes["messaging.message.id"] = properties.message_id
        if properties.correlation_id:
            attributes["messaging.message.conversation_id"] = properties.correlation_id
        span = tracer.start_span(
            f"publish {destination}", kind=self._producer, attributes=attributes
        )
        return _Publishing(self, span, properties.headers)

    def tracing_delivery(
        self, queue: str, handler: str, exchange: str, routing_key: str, properties: Properties
    ) -> contextlib.AbstractContextManager[Any]:
        headers = properties.headers
        parent = None
        if "traceparent" in headers:
            remote = self._plain_parent(headers)
            if remote is None:
                parent = self._propagate.extract(_carrier(headers))
            elif remote.trace_flags & 1 or not self._drops_unsampled:  # sampled (0x01), or kept
                # In a context of its own, as the propagator makes it.
                parent = self._trace.set_span_in_context(
                    self._non_recording(remote), self._context.Context()
                )
            else:
                # The sampler would drop this span (and any child of it): no span is made,
                # the parent's context is current instead, so what the handler publishes
                # carries the trace on, unsampled, as the SDK's non-recording span would.
                return _Processing(self, self._non_recording(remote))
        tracer = self._tracer._tracer if self._proxied else self._tracer
        if type(tracer) is self._noop:
            # The API's no-op tracer records nothing: its span is the parent's (or, with
            # none, the one current), so neither a name nor attributes are made for it.
            if parent is None:
                current = self._current().get(self._span_key)
                if current is None or current is self._invalid.span:  # no trace: no change
                    return self._invalid
                if isinstance(current, self._non_recording):
                    return _Current(current)
            return _Processing(self, tracer.start_span(f"process {queue}", parent, self._consumer))
        attributes = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.rabbitmq.destination.routing_key": routing_key,
        }
        if properties.message_id:
            attributes["messaging.message.id"] = properties.message_id
        if properties.correlation_id:
            attributes["messaging.message.conversation_id"] = properties.correlation_id
        span = tracer.start_span(
            f"process {queue}", context=parent, kind=self._consumer, attributes=attributes
        )
        return _Processing(self, span)

    def _plain_parent(self, headers: dict[str, Any]) -> Any:
        """The remote parent of a delivery whose only trace header is a plain version-00
        ``traceparent``, read here when the propagator is the default W3C one (what it
        would read, at a fraction of the cost); ``None`` for anything else, which the
        propagator reads."""
        if "tracestate" in headers or "baggage" in headers:
            return None
        if self._global_textmap() is not self._textmap:
            self._default_textmap()  # (the propagator was replaced: look at it again)
        if not self._plain:
            return None
        value = headers["traceparent"]
        if isinstance(value, bytes | bytearray):
            value = value.decode("latin-1")
        if not isinstance(value, str):
            return None
        match = _TRACEPARENT(value)
        if match is None:
            return None
        trace_id, span_id, flags = match.groups()
        trace_number, span_number = int(trace_id, 16), int(span_id, 16)
        if not trace_number or not span_number:
            return None
        return self._span_context(
            trace_number, span_number, is_remote=True, trace_flags=self._flags[flags]
        )

    def _default_textmap(self) -> bool:
        """Whether the global propagator is the default one (W3C trace context and
        baggage) or trace context alone; checked again when it is replaced."""
        textmap = self._propagate.get_global_textmap()
        if textmap is not self._textmap:
            from opentelemetry.baggage.propagation import W3CBaggagePropagator
            from opentelemetry.propagators.composite import CompositePropagator
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            parts = textmap._propagators if type(textmap) is CompositePropagator else [textmap]
            kinds = [type(part) for part in parts]
            self._textmap = textmap
            self._plain = kinds in (
                [TraceContextTextMapPropagator, W3CBaggagePropagator],
                [TraceContextTextMapPropagator],
            )
        return self._plain

    def _record(self, span: Any, exc: BaseException) -> None:
        """Record ``exc`` on ``span`` as failed, with credentials redacted from the text
        (the SDK would record it as it is)."""
        text = redact(str(exc))
        span.record_exception(
            exc,
            attributes={
                "exception.message": text,
                "exception.stacktrace": redact("".join(traceback.format_exception(exc))),
            },
        )
        span.set_status(
            self._trace.Status(self._trace.StatusCode.ERROR, f"{type(exc).__name__}: {text}")
        )


# The wrappers are plain classes rather than generator context managers: a message
# costs one small object, not a generator, its frame and contextlib's wrapper around it.


class _Publishing:
    """One publish's span, current while the message is sent; the trace context goes into
    its headers. A failure (an Exception) is recorded on the span, as the SDK would."""

    __slots__ = ("_headers", "_span", "_token", "_tracing")

    def __init__(self, tracing: OpenTelemetry, span: Any, headers: dict[str, Any]) -> None:
        self._tracing, self._span, self._headers = tracing, span, headers

    def __enter__(self) -> Any:
        tracing = self._tracing
        self._token = tracing._attach(tracing._in_context(self._span))
        try:
            tracing._inject(self._headers)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self._span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        span, tracing = self._span, self._tracing
        try:
            try:
                tracing._reset(self._token)
            except Exception:  # the API's own detach tries again, and logs why it fails
                tracing._detach(self._token)
            if isinstance(exc, Exception) and span.is_recording():
                tracing._record(span, exc)
        finally:
            span.end()


class _Processing:
    """One handler attempt's span, current while it runs; what it raises is recorded."""

    __slots__ = ("_span", "_token", "_tracing")

    def __init__(self, tracing: OpenTelemetry, span: Any) -> None:
        self._tracing, self._span = tracing, span

    def __enter__(self) -> Any:
        tracing = self._tracing
        self._token = tracing._attach(tracing._in_context(self._span))
        return self._span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        span, tracing = self._span, self._tracing
        try:
            try:
                tracing._reset(self._token)
            except Exception:  # the API's own detach tries again, and logs why it fails
                tracing._detach(self._token)
            if exc is not None and span.is_recording():
                tracing._record(span, exc)
        finally:
            span.end()


class _Current:
    """What the API's no-op tracer would make current is current already: the handler
    attempt runs as it is (a non-recording span records no exception)."""

    __slots__ = ("span",)

    def __init__(self, span: Any) -> None:
        self.span = span

    def __enter__(self) -> Any:
        return self.span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        return None


class _Injecting:
    """A publish under the no-op tracer, whose span (non-recording) is current already:
    the current trace context still goes into its headers."""

    __slots__ = ("_headers", "_span", "_tracing")

    def __init__(self, tracing: OpenTelemetry, span: Any, headers: dict[str, Any]) -> None:
        self._tracing, self._span, self._headers = tracing, span, headers

    def __enter__(self) -> Any:
        self._tracing._inject(self._headers)
        return self._span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        return None


def _variable(context: Any) -> ContextVar[Any] | None:
    """The context variable of the API's default runtime context, whose ``set``, ``reset``
    and ``get`` its ``attach``, ``detach`` and ``get_current`` call (two or three Python
    calls more per use); ``None`` with another runtime context."""
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable
    return None


def _span_setter(current: Any, key: str, made: Any) -> Any:
    """``set_span_in_context`` for the current context, done as the API does it (a copy of
    the current context with ``span`` under ``key``) in one call rather than four."""

    def in_context(span: Any) -> Any:
        values = current().copy()
        values[key] = span
        return made(values)

    return in_context


def _carrier(headers: dict[str, Any]) -> dict[str, Any]:
    """The trace context of AMQP headers as a carrier: values that are bytes (a decoding
    leftover) read as text."""
    carrier = {}
    for key in ("traceparent", "tracestate", "baggage"):
        value = headers.get(key)
        if value is not None:
            carrier[key] = (
                value.decode("latin-1") if isinstance(value, bytes | bytearray) else value
            )
    return carrier


# Version 00 exactly: trace id, span id and flags in lower-case hex, as W3C trace context has it.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})").fullmatch


def _drops_unsampled(tracer: Any) -> bool:
    """Whether ``tracer`` (the SDK's) drops every span whose parent is not sampled, remote
    or local: a ``ParentBased`` sampler with its default ``ALWAYS_OFF`` for both."""
    try:
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
    except ImportError:  # the API alone: its tracer makes no spans anyway
        return False
    sampler = getattr(tracer, "sampler", None)
    return (
        isinstance(sampler, ParentBased)
        and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
        and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
    )


def _version() -> str:
    try:
        return importlib.metadata.version("burrowmq")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "0"
