"""Prometheus metrics of an App, with prometheus-client (the ``prometheus`` extra).

=========================================  =====================  ========================
metric                                     labels                 what
=========================================  =====================  ========================
``burrowmq_messages_total``                queue, handler,        deliveries settled:
                                           outcome                acked, retried,
                                                                  dead_lettered, rejected
``burrowmq_handler_duration_seconds``      queue, handler         handler run time
``burrowmq_in_flight``                     queue                  handlers running now
``burrowmq_consumers``                     queue                  consumers running now
``burrowmq_published_total``               exchange, outcome      confirmed, nacked,
                                                                  unroutable, lost
``burrowmq_publish_duration_seconds``      exchange               publish to confirm
``burrowmq_rpc_calls_total``               procedure, outcome     ok, remote_error,
                                                                  timeout, no_route, lost
``burrowmq_rpc_duration_seconds``          procedure              call to reply
``burrowmq_connection_recoveries_total``   (none)                 connections recovered
=========================================  =====================  ========================

The figures are kept in plain numbers on the event loop and handed to prometheus-client
as metric families when the registry is collected (a custom collector, as its documentation
describes them): an update per message is a few additions, not the locked value, label
checks and bucket loop of prometheus-client's own ``Counter`` and ``Histogram``, which cost
a quarter of a consumed message's CPU. The exposition, the registry and the text format
stay prometheus-client's. Handlers in flight and consumers are not counted per message at
all: they are read off the running consumers when the registry is collected. Histograms
have prometheus-client's default buckets.

The figures of one registry are kept once and shared by every App of the process that
uses it, so two Apps (or two tests) do not register the metrics twice.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.instrument import Instrument, Watched

__all__ = ["Prometheus"]

_BY_REGISTRY: dict[int, _Figures] = {}


class _Timing:
    """A histogram's figures: a count per bucket (not cumulative), their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0


class _Timings(dict[Any, _Timing]):
    """A histogram's figures by label values, made on first use, with prometheus-client's
    default bucket bounds."""

    __slots__ = ("bounds",)

    def __init__(self, bounds: tuple[float, ...]) -> None:
        super().__init__()
        self.bounds = bounds

    def observe(self, key: Any, seconds: float) -> None:
        """Count ``seconds`` for the label values ``key``."""
        timing = self.get(key)
        if timing is None:
            timing = self[key] = _Timing(len(self.bounds))
        timing.counts[bisect_left(self.bounds, seconds)] += 1
        timing.sum += seconds


class _Figures:
    """What the instruments of one registry counted, and its collector."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Histogram
        from prometheus_client.utils import floatToGoString

        self.registry = registry
        self.bounds: tuple[float, ...] = tuple(Histogram.DEFAULT_BUCKETS)  # ends with +Inf
        self._le: tuple[str, ...] = tuple(
            floatToGoString(bound)  # type: ignore[no-untyped-call]
            for bound in self.bounds
        )
        self.messages: dict[tuple[str, str, str], int] = {}
        self.handler_duration = _Timings(self.bounds)  # by (queue, handler)
        self.published: dict[tuple[str, str], int] = {}
        self.publish_duration = _Timings(self.bounds)  # by exchange
        self.rpc_calls: dict[tuple[str, str], int] = {}
        self.rpc_duration = _Timings(self.bounds)  # by procedure
        self.recoveries = 0
        self.consumers: dict[str, set[Watched]] = {}  # the running ones, by queue

    def describe(self) -> Iterator[Any]:
        """The families, empty: their names, for the registry's duplicate check."""
        return self._families(empty=True)

    def collect(self) -> Iterator[Any]:
        """The families with what was counted (called by the registry at each scrape)."""
        return self._families(empty=False)

    def _families(self, empty: bool) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        def counter(name: str, doc: str, labels: list[str], table: dict[Any, int]) -> Any:
            family = CounterMetricFamily(name, doc, labels=labels)
            for key, value in [] if empty else list(table.items()):
                family.add_metric(key if isinstance(key, tuple) else (key,), value)
            return family

        def histogram(name: str, doc: str, labels: list[str], table: dict[Any, _Timing]) -> Any:
            family = HistogramMetricFamily(name, doc, labels=labels)
            for key, timing in [] if empty else list(table.items()):
                family.add_metric(
                    key if isinstance(key, tuple) else (key,),
                    self._buckets(timing.counts),
                    timing.sum,
                )
            return family

        yield counter(
            "burrowmq_messages",
            "Deliveries settled, by outcome.",
            ["queue", "handler", "outcome"],
            self.messages,
        )
        yield histogram(
            "burrowmq_handler_duration_seconds",
            "How long handlers run.",
            ["queue", "handler"],
            self.handler_duration,
        )
        in_flight = GaugeMetricFamily(
            "burrowmq_in_flight", "Handlers running now.", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "burrowmq_consumers", "Consumers running now.", labels=["queue"]
        )
        for queue, running in [] if empty else list(self.consumers.items()):
            watched = list(running)
            in_flight.add_metric((queue,), sum(c.in_flight for c in watched))
            consumers.add_metric((queue,), len(watched))
        yield in_flight
        yield consumers
        yield counter(
            "burrowmq_published",
            "Publishes, by outcome.",
            ["exchange", "outcome"],
            self.published,
        )
        yield histogram(
            "burrowmq_publish_duration_seconds",
            "From publish to the broker's confirm.",
            ["exchange"],
            self.publish_duration,
        )
        yield counter(
            "burrowmq_rpc_calls",
            "RPC calls, by outcome.",
            ["procedure", "outcome"],
            self.rpc_calls,
        )
        yield histogram(
            "burrowmq_rpc_duration_seconds",
            "From call to reply.",
            ["procedure"],
            self.rpc_duration,
        )
        recoveries = CounterMetricFamily(
            "burrowmq_connection_recoveries", "Connections recovered after a loss."
        )
        if not empty:
            recoveries.add_metric((), self.recoveries)
        yield recoveries

    def _buckets(self, counts: list[int]) -> list[tuple[str, float]]:
        buckets: list[tuple[str, float]] = []
        total = 0
        for le, count in zip(self._le, counts, strict=True):
            total += count
            buckets.append((le, total))
        return buckets


def _figures(registry: Any) -> _Figures:
    found = _BY_REGISTRY.get(id(registry))
    if found is not None and found.registry is registry:
        return found
    made = _Figures(registry)
    try:
        registry.register(made)
    except ValueError as exc:  # prometheus-client: "Duplicated timeseries in CollectorRegistry"
        raise ConfigurationError(
            f"Prometheus(): the registry already has metrics of burrowmq's names ({exc}); "
            "pass a registry of its own, or the same one to every App"
        ) from None
    _BY_REGISTRY[id(registry)] = made
    return made


class Prometheus(Instrument):
    """Counts and times an App's work in Prometheus metrics (see the module's table).

    Args:
        registry: the ``prometheus_client.CollectorRegistry`` to register in (default:
            prometheus-client's global ``REGISTRY``, what ``burrowmq run --http`` serves).

    Raises:
        ConfigurationError: prometheus-client is not installed (``burrowmq[prometheus]``).
    """

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client
        except ImportError:
            raise ConfigurationError(
                "Prometheus() needs prometheus-client: pip install 'burrowmq[prometheus]'"
            ) from None
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        figures = self._figures = _figures(self.registry)
        self._messages = figures.messages
        self._handler_duration = figures.handler_duration
        self._published = figures.published
        self._publish_duration = figures.publish_duration
        self._rpc_calls = figures.rpc_calls
        self._rpc_duration = figures.rpc_duration

    def delivery_settled(self, queue: str, handler: str, outcome: str, seconds: float) -> None:
        key = (queue, handler, outcome)
        messages = self._messages
        messages[key] = messages.get(key, 0) + 1
        if seconds:
            self._handler_duration.observe((queue, handler), seconds)

    def consumer_started(self, consumer: Watched) -> None:
        self._figures.consumers.setdefault(consumer.queue, set()).add(consumer)

    def consumer_stopped(self, consumer: Watched) -> None:
        self._figures.consumers.setdefault(consumer.queue, set()).discard(consumer)

    def published(self, exchange: str, outcome: str, seconds: float) -> None:
        key = (exchange, outcome)
        published = self._published
        published[key] = published.get(key, 0) + 1
        self._publish_duration.observe(exchange, seconds)

    def called(self, procedure: str, outcome: str, seconds: float) -> None:
        key = (procedure, outcome)
        calls = self._rpc_calls
        calls[key] = calls.get(key, 0) + 1
        self._rpc_duration.observe(procedure, seconds)

    def recovered(self, role: str) -> None:
        self._figures.recoveries += 1
