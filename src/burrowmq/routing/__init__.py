"""Routing: routes, routers, topology, dispatch, retries and dead-lettering."""

from __future__ import annotations

from burrowmq.routing.dispatch import Consumer
from burrowmq.routing.redelivery import TooManyRedeliveries
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.routing.router import Router
from burrowmq.routing.signals import Reject
from burrowmq.topology.loader import load_topology
from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Topology

__all__ = [
    "Binding",
    "BindingKey",
    "Consumer",
    "Exchange",
    "Policy",
    "Queue",
    "Reject",
    "Retry",
    "Route",
    "Router",
    "TooManyRedeliveries",
    "Topology",
    "load_topology",
]
