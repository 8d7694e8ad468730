"""OpenTelemetry's delivery and publish wrappers, against the SDK and its in-memory exporter.

The delivery wrapper reads a plain ``traceparent`` itself and makes no span when the
sampler would drop it; these tests hold it to what the SDK's propagator and sampler do.
Under the API's no-op tracer the wrappers make no span either; they are held to what
that tracer's span would leave current, and the global provider's stand-in to tracing
once a provider is installed.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler
from opentelemetry.trace import NoOpTracerProvider, StatusCode

from burrowmq.framework.transport import Properties
from burrowmq.instrumentation import OpenTelemetry

pytestmark = pytest.mark.unit

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _traced(sampler: Sampler | None = None) -> tuple[OpenTelemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler or ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OpenTelemetry(tracer_provider=provider), exporter


def _deliver(tracing: OpenTelemetry, headers: dict[str, Any]) -> dict[str, Any]:
    """Run one delivery with ``headers``; the headers a publish inside it would carry."""
    properties = Properties(headers=headers, message_id="m-1")
    onward: dict[str, Any] = {}
    with tracing.tracing_delivery("q", "h", "", "q", properties):
        propagate.inject(onward)
    return onward


class TestDelivery:
    """The span of a delivery and the context its handler runs in."""

    def test_a_sampled_parent_is_continued(self) -> None:
        """A sampled traceparent makes a recorded child span of that parent."""
        tracing, exporter = _traced()
        onward = _deliver(tracing, {"traceparent": f"00-{TRACE}-{SPAN}-01"})
        [span] = exporter.get_finished_spans()
        assert span.parent is not None and span.parent.is_remote
        assert (span.parent.trace_id, span.parent.span_id) == (int(TRACE, 16), int(SPAN, 16))
        assert span.context.trace_id == int(TRACE, 16)
        assert span.attributes is not None and span.attributes["messaging.message.id"] == "m-1"
        assert onward["traceparent"] == f"00-{TRACE}-{span.context.span_id:016x}-01"

    def test_an_unsampled_parent_makes_no_span_but_carries_the_trace_on(self) -> None:
        """With the default parent-based sampler nothing is recorded, and a publish in
        the handler still carries the trace, unsampled."""
        tracing, exporter = _traced()
        onward = _deliver(tracing, {"traceparent": f"00-{TRACE}-{SPAN}-00"})
        assert exporter.get_finished_spans() == ()
        assert onward["traceparent"].startswith(f"00-{TRACE}-")
        assert onward["traceparent"].endswith("-00")

    def test_an_unsampled_parent_is_recorded_when_the_sampler_says_so(self) -> None:
        """A sampler that keeps children of unsampled parents gets its span."""
        tracing, exporter = _traced(ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON))
        _deliver(tracing, {"traceparent": f"00-{TRACE}-{SPAN}-00"})
        [span] = exporter.get_finished_spans()
        assert span.parent is not None and span.parent.span_id == int(SPAN, 16)

    @pytest.mark.parametrize(
        "traceparent",
        [
            f"00-{TRACE}-{SPAN}-01".encode(),  # bytes, as AMQP may decode a header
            f"00-{TRACE.upper()}-{SPAN}-01",  # upper case: not W3C
            f"00-{'0' * 32}-{SPAN}-01",  # the invalid trace id
            f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has four fields
            f"01-{TRACE}-{SPAN}-01-extra",  # a later version may have more
            f"00-{TRACE}-{SPAN[:-1]}x-01",
            f"00-{TRACE}-{SPAN}-01\n",  # a trailing newline
            f"00-{TRACE}-{SPAN}-0A",  # upper-case flags
            "garbage",
        ],
    )
    def test_reads_traceparent_as_the_propagator_does(self, traceparent: Any) -> None:
        """Whatever the header, the span's parent is what the SDK's propagator reads."""
        tracing, exporter = _traced()
        _deliver(tracing, {"traceparent": traceparent})
        text = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
        expected = trace.get_current_span(
            propagate.extract({"traceparent": text})
        ).get_span_context()
        [span] = exporter.get_finished_spans()
        if expected.is_valid:
            assert span.parent is not None
            assert (span.parent.trace_id, span.parent.span_id) == (
                expected.trace_id,
                expected.span_id,
            )
        else:
            assert span.parent is None

    def test_tracestate_goes_through_the_propagator(self) -> None:
        """A tracestate header is read by the propagator and kept on the parent."""
        tracing, exporter = _traced()
        _deliver(tracing, {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=1"})
        [span] = exporter.get_finished_spans()
        assert span.parent is not None and span.parent.trace_state.get("vendor") == "1"

    def test_a_failure_is_recorded_redacted(self) -> None:
        """What the handler raises marks its span failed, credentials left out."""
        tracing, exporter = _traced()
        with (
            pytest.raises(RuntimeError),
            tracing.tracing_delivery("q", "h", "", "q", Properties()),
        ):
            raise RuntimeError("amqp://user:hunter2@host/ down")
        [span] = exporter.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert "hunter2" not in str(span.status.description)
        assert "hunter2" not in str(span.events[0].attributes)


class TestPublish:
    """The span of a publish."""

    def test_injects_its_own_context(self) -> None:
        """The headers carry the publish span as the parent of what consumes them."""
        tracing, exporter = _traced()
        properties = Properties(message_id="m-2")
        with tracing.tracing_publish("ex", "rk", properties):
            pass
        [span] = exporter.get_finished_spans()
        traceparent = properties.headers["traceparent"]
        assert traceparent[:53] == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
        assert int(traceparent[53:], 16) & 1  # sampled (the SDK may set other flags)
        assert span.name == "publish ex"

    def test_a_failed_publish_is_recorded(self) -> None:
        """A publish that raises ends its span failed, as the SDK's wrapper would."""
        tracing, exporter = _traced()
        with pytest.raises(LookupError), tracing.tracing_publish("", "rk", Properties()):
            raise LookupError("no route")
        [span] = exporter.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
        assert trace.get_current_span() is trace.INVALID_SPAN


class TestNoOpTracer:
    """The API's no-op tracer: nothing recorded, the trace context carried on as it is."""

    def test_an_untraced_delivery_changes_nothing(self) -> None:
        """With no trace, the handler runs with no span current and publishes none."""
        tracing = OpenTelemetry(tracer_provider=NoOpTracerProvider())
        properties = Properties(message_id="m-1")
        with tracing.tracing_delivery("q", "h", "", "q", properties):
            assert trace.get_current_span() is trace.INVALID_SPAN
            onward: dict[str, Any] = {}
            with tracing.tracing_publish("", "rk", Properties(headers=onward)):
                pass
        assert "traceparent" not in onward

    def test_a_traced_delivery_carries_the_trace_on(self) -> None:
        """A traceparent's context is current in the handler, and what it publishes
        carries that context on, as the no-op tracer's span would have it."""
        tracing = OpenTelemetry(tracer_provider=NoOpTracerProvider())
        onward = _deliver(tracing, {"traceparent": f"00-{TRACE}-{SPAN}-01"})
        assert onward["traceparent"] == f"00-{TRACE}-{SPAN}-01"
        published: dict[str, Any] = {}
        properties = Properties(headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
        with tracing.tracing_delivery("q", "h", "", "q", properties):
            current = trace.get_current_span()
            with tracing.tracing_publish("", "rk", Properties(headers=published)):
                assert trace.get_current_span() is current
        assert published["traceparent"] == f"00-{TRACE}-{SPAN}-01"
        assert trace.get_current_span() is trace.INVALID_SPAN

    def test_a_recording_span_current_is_not_continued(self) -> None:
        """A span another tracer records, current around the delivery, is replaced by a
        non-recording one of the same context, as the no-op tracer does."""
        tracing = OpenTelemetry(tracer_provider=NoOpTracerProvider())
        recording, exporter = _traced()
        with recording._tracer.start_as_current_span("outer") as outer:
            with tracing.tracing_delivery("q", "h", "", "q", Properties()):
                current = trace.get_current_span()
                assert current is not outer and not current.is_recording()
                assert current.get_span_context() == outer.get_span_context()
            assert trace.get_current_span() is outer
        assert [span.name for span in exporter.get_finished_spans()] == ["outer"]

    def test_the_global_provider_traces_once_installed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Made before a provider is installed, the wrappers use the provider installed
        later (the global one is put back after the test)."""
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
        tracing = OpenTelemetry()
        _deliver(tracing, {})  # the no-op tracer, for now
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
        onward = _deliver(tracing, {})
        with tracing.tracing_publish("ex", "rk", Properties()):
            pass
        assert [span.name for span in exporter.get_finished_spans()] == [
            "process q",
            "publish ex",
        ]
        assert onward["traceparent"].startswith("00-")


def test_another_runtime_context_is_used_through_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a runtime context other than the API's default, the wrappers make contexts
    current through the API's functions, to the same effect."""
    from burrowmq.instrumentation import opentelemetry

    monkeypatch.setattr(opentelemetry, "_variable", lambda context: None)
    tracing, exporter = _traced()
    onward = _deliver(tracing, {"traceparent": f"00-{TRACE}-{SPAN}-01"})
    [span] = exporter.get_finished_spans()
    assert onward["traceparent"] == f"00-{TRACE}-{span.context.span_id:016x}-01"
    assert trace.get_current_span() is trace.INVALID_SPAN
