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
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import traceback
from collections.abc import Iterator
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
            from opentelemetry import propagate, trace
        except ImportError:
            raise ConfigurationError(
                "OpenTelemetry() needs opentelemetry-api: pip install 'burrowmq[otel]'"
            ) from None
        self._trace = trace
        self._propagate = propagate
        self._tracer = trace.get_tracer("burrowmq", _version(), tracer_provider=tracer_provider)
        self._consumer = trace.SpanKind.CONSUMER
        self._producer = trace.SpanKind.PRODUCER

    @contextlib.contextmanager
    def tracing_publish(
        self, exchange: str, routing_key: str, properties: Properties
    ) -> Iterator[Any]:
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
        with self._tracer.start_as_current_span(
            f"publish {destination}", kind=self._producer, attributes=attributes
        ) as span:
            self._propagate.inject(properties.headers)
            yield span

    @contextlib.contextmanager
    def tracing_delivery(
        self, queue: str, handler: str, exchange: str, routing_key: str, properties: Properties
    ) -> Iterator[Any]:
        headers = properties.headers
        parent = self._propagate.extract(_Carrier(headers)) if "traceparent" in headers else None
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
        span = self._tracer.start_span(
            f"process {queue}", context=parent, kind=self._consumer, attributes=attributes
        )
        with self._trace.use_span(span, end_on_exit=True, record_exception=False,
                                  set_status_on_exception=False):  # fmt: skip
            try:
                yield span
            except BaseException as exc:
                if span.is_recording():
                    # The SDK would record the text as it is; credentials never leave.
                    span.record_exception(
                        exc,
                        attributes={
                            "exception.message": redact(str(exc)),
                            "exception.stacktrace": redact(
                                "".join(traceback.format_exception(exc))
                            ),
                        },
                    )
                    span.set_status(
                        self._trace.Status(
                            self._trace.StatusCode.ERROR,
                            f"{type(exc).__name__}: {redact(str(exc))}",
                        )
                    )
                raise


class _Carrier(dict[str, Any]):
    """AMQP headers as a carrier: values that are bytes (a decoding leftover) read as text."""

    def __init__(self, headers: dict[str, Any]) -> None:
        super().__init__(
            (k, v.decode("latin-1") if isinstance(v, bytes | bytearray) else v)
            for k, v in headers.items()
            if k in ("traceparent", "tracestate", "baggage")
        )


def _version() -> str:
    try:
        return importlib.metadata.version("burrowmq")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "0"
