"""Instrumentation: Prometheus metrics, OpenTelemetry tracing and health.

``App(instrumentation=[Prometheus(), OpenTelemetry()])``; each instrument needs its extra
(``burrowmq[prometheus]``, ``burrowmq[otel]``), whose library is imported only when the
instrument is made. Imports framework only; the App and the CLI use it.
"""

from __future__ import annotations

from burrowmq.framework.instrument import Instrument
from burrowmq.instrumentation.health import ConsumerHealth, Health
from burrowmq.instrumentation.opentelemetry import OpenTelemetry
from burrowmq.instrumentation.prometheus import Prometheus

__all__ = ["ConsumerHealth", "Health", "Instrument", "OpenTelemetry", "Prometheus"]
