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

The metrics of one registry are made once and shared by every App of the process that
uses it, so two Apps (or two tests) do not register them twice.
"""

from __future__ import annotations

from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.instrument import Instrument

__all__ = ["Prometheus"]

_BY_REGISTRY: dict[int, dict[str, Any]] = {}


def _metrics(registry: Any) -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    found = _BY_REGISTRY.get(id(registry))
    if found is not None and found["registry"] is registry:
        return found
    made: dict[str, Any] = {
        "registry": registry,
        "messages": Counter(
            "burrowmq_messages",
            "Deliveries settled, by outcome.",
            ["queue", "handler", "outcome"],
            registry=registry,
        ),
        "handler_duration": Histogram(
            "burrowmq_handler_duration_seconds",
            "How long handlers run.",
            ["queue", "handler"],
            registry=registry,
        ),
        "in_flight": Gauge(
            "burrowmq_in_flight", "Handlers running now.", ["queue"], registry=registry
        ),
        "consumers": Gauge(
            "burrowmq_consumers", "Consumers running now.", ["queue"], registry=registry
        ),
        "published": Counter(
            "burrowmq_published",
            "Publishes, by outcome.",
            ["exchange", "outcome"],
            registry=registry,
        ),
        "publish_duration": Histogram(
            "burrowmq_publish_duration_seconds",
            "From publish to the broker's confirm.",
            ["exchange"],
            registry=registry,
        ),
        "rpc_calls": Counter(
            "burrowmq_rpc_calls",
            "RPC calls, by outcome.",
            ["procedure", "outcome"],
            registry=registry,
        ),
        "rpc_duration": Histogram(
            "burrowmq_rpc_duration_seconds",
            "From call to reply.",
            ["procedure"],
            registry=registry,
        ),
        "recoveries": Counter(
            "burrowmq_connection_recoveries",
            "Connections recovered after a loss.",
            registry=registry,
        ),
    }
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
        metrics = _metrics(self.registry)
        self._messages = metrics["messages"]
        self._handler_duration = metrics["handler_duration"]
        self._in_flight = metrics["in_flight"]
        self._consumers = metrics["consumers"]
        self._published = metrics["published"]
        self._publish_duration = metrics["publish_duration"]
        self._rpc_calls = metrics["rpc_calls"]
        self._rpc_duration = metrics["rpc_duration"]
        self._recoveries = metrics["recoveries"]
        # Label lookups cost more than the update itself: each metric's children are
        # resolved once per label values and kept, so a message costs one dict lookup.
        self._messages_of = _Children(self._messages)
        self._handler_duration_of = _Children(self._handler_duration)
        self._in_flight_of = _Children(self._in_flight)
        self._consumers_of = _Children(self._consumers)
        self._published_of = _Children(self._published)
        self._publish_duration_of = _Children(self._publish_duration)
        self._rpc_calls_of = _Children(self._rpc_calls)
        self._rpc_duration_of = _Children(self._rpc_duration)

    def delivery_settled(self, queue: str, handler: str, outcome: str, seconds: float) -> None:
        self._messages_of[queue, handler, outcome].inc()
        if seconds:
            self._handler_duration_of[queue, handler].observe(seconds)

    def handling(self, queue: str, delta: int) -> None:
        self._in_flight_of[queue].inc(delta)

    def consumers(self, queue: str, delta: int) -> None:
        self._consumers_of[queue].inc(delta)

    def published(self, exchange: str, outcome: str, seconds: float) -> None:
        self._published_of[exchange, outcome].inc()
        self._publish_duration_of[exchange].observe(seconds)

    def called(self, procedure: str, outcome: str, seconds: float) -> None:
        self._rpc_calls_of[procedure, outcome].inc()
        self._rpc_duration_of[procedure].observe(seconds)

    def recovered(self, role: str) -> None:
        self._recoveries.inc()


class _Children(dict[Any, Any]):
    """A metric's children by label values (a string, or a tuple of them), made on first use."""

    __slots__ = ("_metric",)

    def __init__(self, metric: Any) -> None:
        super().__init__()
        self._metric = metric

    def __missing__(self, labels: Any) -> Any:
        child = self[labels] = (
            self._metric.labels(*labels)
            if isinstance(labels, tuple)
            else self._metric.labels(labels)
        )
        return child
