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
        # Label lookups cost more than the update itself: children are kept per labels.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def delivery_settled(self, queue: str, handler: str, outcome: str, seconds: float) -> None:
        self._child(self._messages, queue, handler, outcome).inc()
        if seconds:
            self._child(self._handler_duration, queue, handler).observe(seconds)

    def handling(self, queue: str, delta: int) -> None:
        self._child(self._in_flight, queue).inc(delta)

    def consumers(self, queue: str, delta: int) -> None:
        self._child(self._consumers, queue).inc(delta)

    def published(self, exchange: str, outcome: str, seconds: float) -> None:
        self._child(self._published, exchange, outcome).inc()
        self._child(self._publish_duration, exchange).observe(seconds)

    def called(self, procedure: str, outcome: str, seconds: float) -> None:
        self._child(self._rpc_calls, procedure, outcome).inc()
        self._child(self._rpc_duration, procedure).observe(seconds)

    def recovered(self, role: str) -> None:
        self._recoveries.inc()
