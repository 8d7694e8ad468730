"""Contract: Prometheus counts and OpenTelemetry traces what an App does, on both transports.

Each test runs on the memory transport and on RabbitMQ (see ``conftest.py``), with the
real prometheus-client (its own registry per test, read back through its text format
and parser) and the OpenTelemetry SDK's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from burrowmq import NoRoute, Reject, RemoteError, Retry, Router, RpcTimeout
from burrowmq.instrumentation import OpenTelemetry, Prometheus
from tests.contract.conftest import Backend

pytestmark = pytest.mark.contract


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry, read back from the Prometheus text format."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class TestPrometheus:
    """The counters equal what the test drove."""

    @pytest.mark.timeout(60)
    async def test_consumed_published_and_called(self, backend: Backend) -> None:
        """Acked, retried, dead-lettered and rejected deliveries, confirmed and unroutable publishes, and RPC outcomes are counted exactly."""
        registry = CollectorRegistry()
        queue = backend.names.queue("metered")
        service = f"svc{uuid.uuid4().hex[:8]}"
        backend.names.add_queue(f"rpc.{service}")
        attempts: dict[int, int] = {}
        done = asyncio.Event()
        settled: list[int] = []
        router = Router()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=2, wait=0))
        async def job(body: dict[str, int]) -> None:
            n = body["n"]
            attempts[n] = attempts.get(n, 0) + 1
            try:
                if n % 4 == 1 and attempts[n] == 1:
                    raise RuntimeError("once")  # retried, then acked
                if n % 4 == 2:
                    raise RuntimeError("always")  # retried, then dead-lettered
                if n % 4 == 3:
                    raise Reject("refused")  # rejected at once
            finally:
                settled.append(n)
                if len(settled) == 12:  # of 8 messages, the 4 with n % 4 in (1, 2) run twice
                    done.set()

        @router.rpc(f"{service}.div")
        async def div(req: dict[str, int]) -> float:
            return req["a"] / req["b"]

        @router.rpc(f"{service}.slow")
        async def slow(req: dict[str, int]) -> int:
            await asyncio.sleep(2)
            return 0

        app = backend.app(router, instrumentation=[Prometheus(registry)])
        await app.start()
        for n in range(8):
            await app.publish("", {"n": n}, routing_key=queue)
        with pytest.raises(Exception):  # noqa: B017 - unroutable, counted as such
            await app.publish("", {"n": -1}, routing_key="nowhere." + queue, mandatory=True)
        await asyncio.wait_for(done.wait(), 20)
        assert await app.call(f"{service}.div", {"a": 1, "b": 2}, timeout=10) == 0.5
        with pytest.raises(RemoteError):
            await app.call(f"{service}.div", {"a": 1, "b": 0}, timeout=10)
        with pytest.raises(RpcTimeout):
            await app.call(f"{service}.slow", {}, timeout=0.3)
        with pytest.raises(NoRoute):
            await app.call(f"nobody{uuid.uuid4().hex[:6]}.x", {}, timeout=5)
        await asyncio.sleep(0.1)
        samples = _samples(registry)
        handler = f"{job.__module__}.{job.__qualname__}"

        def messages(outcome: str) -> float:
            return _value(
                samples, "burrowmq_messages_total", queue=queue, handler=handler, outcome=outcome
            )

        # n%4==0: acked; 1: retried+acked; 2: retried+dead-lettered; 3: rejected (x2 each)
        assert messages("acked") == 4
        assert messages("retried") == 4
        assert messages("dead_lettered") == 2
        assert messages("rejected") == 2
        count = _value(
            samples, "burrowmq_handler_duration_seconds_count", queue=queue, handler=handler
        )
        assert count == 12
        assert _value(samples, "burrowmq_published_total", exchange="", outcome="confirmed") == 8
        assert _value(samples, "burrowmq_published_total", exchange="", outcome="unroutable") == 1
        assert _value(samples, "burrowmq_in_flight", queue=queue) == 0
        assert _value(samples, "burrowmq_consumers", queue=queue) == 1
        calls = {
            outcome: sum(
                v
                for (name, labels), v in samples.items()
                if name == "burrowmq_rpc_calls_total" and ("outcome", outcome) in labels
            )
            for outcome in ("ok", "remote_error", "timeout", "no_route")
        }
        assert calls == {"ok": 1, "remote_error": 1, "timeout": 1, "no_route": 1}
        await app.stop()
        assert _value(_samples(registry), "burrowmq_consumers", queue=queue) == 0

    @pytest.mark.timeout(30)
    async def test_in_flight_and_consumers_are_read_off_the_running_consumers(
        self, backend: Backend
    ) -> None:
        """While two handlers of a queue run, in_flight says 2; after they end, 0; after stop, no consumer."""
        registry = CollectorRegistry()
        queue = backend.names.queue("busy")
        release = asyncio.Event()
        running: list[int] = []
        router = Router()

        @router.consume(queue, queue_options={}, concurrency=4)
        async def hold(body: dict[str, int]) -> None:
            running.append(body["n"])
            await release.wait()

        app = backend.app(router, instrumentation=[Prometheus(registry)])
        await app.start()
        try:
            for n in range(2):
                await app.publish("", {"n": n}, routing_key=queue)
            for _ in range(200):
                if len(running) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(running) == [0, 1]
            samples = _samples(registry)
            assert _value(samples, "burrowmq_in_flight", queue=queue) == 2
            assert _value(samples, "burrowmq_consumers", queue=queue) == 1
            release.set()
            for _ in range(200):
                samples = _samples(registry)
                if (
                    _value(
                        samples,
                        "burrowmq_messages_total",
                        queue=queue,
                        handler=f"{hold.__module__}.{hold.__qualname__}",
                        outcome="acked",
                    )
                    == 2
                ):
                    break
                await asyncio.sleep(0.05)
            assert _value(samples, "burrowmq_in_flight", queue=queue) == 0
        finally:
            release.set()
            await app.stop()
        samples = _samples(registry)
        assert ("burrowmq_consumers", (("queue", queue),)) in samples  # the series stays, at 0
        assert _value(samples, "burrowmq_consumers", queue=queue) == 0


class TestOpenTelemetry:
    """One trace from a publish through a consumer, its retry, an RPC call and its server."""

    @pytest.mark.timeout(60)
    async def test_one_trace_across_two_apps(self, backend: Backend) -> None:
        """Spans link publish -> process (failed) and process (retried) -> RPC publish -> RPC process."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = OpenTelemetry(tracer_provider=provider)
        queue = backend.names.queue("traced")
        service = f"svc{uuid.uuid4().hex[:8]}"
        backend.names.add_queue(f"rpc.{service}")
        tries: list[int] = []
        done = asyncio.Event()
        front, back = Router(), Router()
        caller: dict[str, Any] = {}

        @front.consume(queue, queue_options={}, retry=Retry(attempts=2, wait=0))
        async def work(body: dict[str, int]) -> None:
            tries.append(1)
            if len(tries) == 1:
                raise RuntimeError("first try fails: password=hunter2")
            await caller["app"].call(f"{service}.price", body, timeout=10)
            done.set()

        @back.rpc(f"{service}.price")
        async def price(req: dict[str, int]) -> int:
            return req["n"] * 2

        worker = backend.app(front, instrumentation=[tracing])
        server = backend.app(back, instrumentation=[tracing])
        publisher = backend.app(instrumentation=[tracing])
        caller["app"] = worker
        for app in (server, worker, publisher):
            await app.start()
        await publisher.publish("", {"n": 21}, routing_key=queue)
        await asyncio.wait_for(done.wait(), 20)
        await asyncio.sleep(0.2)
        spans = exporter.get_finished_spans()
        by_name: dict[str, list[Any]] = {}
        for span in spans:
            by_name.setdefault(span.name, []).append(span)
        [publish] = by_name["publish (default)"]
        processes = sorted(by_name[f"process {queue}"], key=lambda s: s.start_time)
        [request] = by_name["publish burrowmq.rpc"]
        [served] = by_name[f"process rpc.{service}"]
        trace_id = publish.context.trace_id
        assert {s.context.trace_id for s in [*processes, request, served]} == {trace_id}
        assert publish.kind is SpanKind.PRODUCER
        failed, retried = processes
        assert failed.kind is SpanKind.CONSUMER
        assert failed.parent.span_id == publish.context.span_id
        assert retried.parent.span_id == publish.context.span_id
        assert failed.status.status_code is StatusCode.ERROR
        [event] = [e for e in failed.events if e.name == "exception"]
        assert event.attributes["exception.type"] == "RuntimeError"
        assert "hunter2" not in str(event.attributes)
        assert retried.status.status_code is not StatusCode.ERROR
        assert request.parent.span_id == retried.context.span_id
        assert served.parent.span_id == request.context.span_id
        assert publish.attributes["messaging.system"] == "rabbitmq"
        assert publish.attributes["messaging.rabbitmq.destination.routing_key"] == queue
        assert failed.attributes["messaging.destination.name"] == queue
