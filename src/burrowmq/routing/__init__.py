"""Routing: routes and routers, and how each delivery runs (the pipeline, dispatch,
retries, dead-lettering, redelivery). Imports topology and framework; the App and the
RPC package build on it.
"""

from __future__ import annotations

from burrowmq.routing.batch import Batch
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.routing.router import Router
from burrowmq.routing.signals import BatchError, Reject

__all__ = ["Batch", "BatchError", "BindingKey", "Reject", "Retry", "Route", "Router"]
