"""The Prometheus instrument's figures, read back through prometheus-client's text format and parser."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from burrowmq.exceptions import ConfigurationError
from burrowmq.instrumentation import Prometheus


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class _Consumer:
    def __init__(self, queue: str, in_flight: int) -> None:
        self.queue = queue
        self.in_flight = in_flight


class TestFigures:
    def test_histogram_buckets_are_cumulative_with_the_default_bounds(self) -> None:
        registry = CollectorRegistry()
        metrics = Prometheus(registry)
        for seconds in (0.001, 0.005, 0.3, 0.3, 12.0):
            metrics.delivery_settled("q", "h", "acked", seconds)
        samples = _samples(registry)

        def bucket(le: str) -> float:
            key = (
                "burrowmq_handler_duration_seconds_bucket",
                (("handler", "h"), ("le", le), ("queue", "q")),
            )
            return samples[key]

        assert bucket("0.005") == 2  # a bound is inclusive: 0.005 <= 0.005
        assert bucket("0.25") == 2
        assert bucket("0.5") == 4
        assert bucket("10.0") == 4
        assert bucket("+Inf") == 5
        assert (
            samples[("burrowmq_handler_duration_seconds_count", (("handler", "h"), ("queue", "q")))]
            == 5
        )
        total = samples[
            ("burrowmq_handler_duration_seconds_sum", (("handler", "h"), ("queue", "q")))
        ]
        assert total == pytest.approx(12.606)
        key = ("burrowmq_messages_total", (("handler", "h"), ("outcome", "acked"), ("queue", "q")))
        assert samples[key] == 5

    def test_an_unrun_handler_is_counted_but_not_timed(self) -> None:
        registry = CollectorRegistry()
        Prometheus(registry).delivery_settled("q", "h", "rejected", 0.0)
        samples = _samples(registry)
        assert (
            samples[
                (
                    "burrowmq_messages_total",
                    (("handler", "h"), ("outcome", "rejected"), ("queue", "q")),
                )
            ]
            == 1
        )
        assert not any(name.startswith("burrowmq_handler_duration") for name, _ in samples)

    def test_publishes_calls_and_recoveries(self) -> None:
        registry = CollectorRegistry()
        metrics = Prometheus(registry)
        metrics.published("orders", "confirmed", 0.002)
        metrics.published("orders", "nacked", 0.004)
        metrics.called("pricing.quote", "ok", 0.02)
        metrics.called("pricing.quote", "timeout", 5.0)
        metrics.recovered("consume")
        metrics.recovered("publish")
        samples = _samples(registry)
        assert (
            samples[
                ("burrowmq_published_total", (("exchange", "orders"), ("outcome", "confirmed")))
            ]
            == 1
        )
        assert samples[("burrowmq_publish_duration_seconds_count", (("exchange", "orders"),))] == 2
        assert (
            samples[
                (
                    "burrowmq_rpc_calls_total",
                    (("outcome", "timeout"), ("procedure", "pricing.quote")),
                )
            ]
            == 1
        )
        assert (
            samples[
                (
                    "burrowmq_rpc_duration_seconds_bucket",
                    (("le", "2.5"), ("procedure", "pricing.quote")),
                )
            ]
            == 1
        )
        assert samples[("burrowmq_connection_recoveries_total", ())] == 2

    def test_in_flight_and_consumers_are_read_when_collected(self) -> None:
        registry = CollectorRegistry()
        metrics = Prometheus(registry)
        first, second = _Consumer("q", 3), _Consumer("q", 1)
        metrics.consumer_started(first)
        metrics.consumer_started(second)
        samples = _samples(registry)
        assert samples[("burrowmq_in_flight", (("queue", "q"),))] == 4
        assert samples[("burrowmq_consumers", (("queue", "q"),))] == 2
        first.in_flight = 0
        metrics.consumer_stopped(second)
        samples = _samples(registry)
        assert samples[("burrowmq_in_flight", (("queue", "q"),))] == 0
        assert samples[("burrowmq_consumers", (("queue", "q"),))] == 1


class TestRegistry:
    def test_instruments_of_one_registry_share_their_figures(self) -> None:
        registry = CollectorRegistry()
        Prometheus(registry).delivery_settled("q", "h", "acked", 0.0)
        Prometheus(registry).delivery_settled("q", "h", "acked", 0.0)
        samples = _samples(registry)
        assert (
            samples[
                (
                    "burrowmq_messages_total",
                    (("handler", "h"), ("outcome", "acked"), ("queue", "q")),
                )
            ]
            == 2
        )

    def test_a_name_taken_in_the_registry_is_refused_naming_it(self) -> None:
        registry = CollectorRegistry()
        Counter("burrowmq_messages", "someone else's", registry=registry)
        with pytest.raises(ConfigurationError, match="burrowmq_messages"):
            Prometheus(registry)
