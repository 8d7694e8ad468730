"""Topology as code: the model, the YAML/definitions loader, plan, apply, export, graph.

Also the management API client its tools use. It depends on :mod:`burrowmq.framework`
only; routing builds on its model, and the CLI drives its tools.
"""

from __future__ import annotations

from burrowmq.topology.loader import load_topology
from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Stream, Topology

__all__ = ["Binding", "Exchange", "Policy", "Queue", "Stream", "Topology", "load_topology"]
