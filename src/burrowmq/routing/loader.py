"""Loader: topology from YAML (or definitions JSON) files.

Minimal first version: safe YAML loading into :class:`Topology`; the full validation
with file, line and key path lands with the topology issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from burrowmq.exceptions import TopologyError
from burrowmq.routing.topology import Binding, Exchange, Policy, Queue, Topology

__all__ = ["EXTENSION_KEY", "load_topology"]

EXTENSION_KEY = "x-burrowmq"
_IGNORED = {
    "rabbit_version",
    "rabbitmq_version",
    "product_name",
    "product_version",
    "users",
    "vhosts",
    "permissions",
    "topic_permissions",
    "parameters",
    "global_parameters",
    EXTENSION_KEY,
}


def load_topology(path: str | Path) -> Topology:
    """Load a topology file.

    Raises:
        TopologyError: the file is missing, not YAML, or not a valid topology.
    """
    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read: {exc.strerror}", source=str(path)) from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}", source=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TopologyError(f"{path}: the top level must be a mapping", source=str(path))
    body = {k: v for k, v in data.items() if k not in _IGNORED}
    try:
        topology = Topology.model_validate(body)
    except ValidationError as exc:
        raise TopologyError(f"{path}: {exc}", source=str(path)) from None
    entities: list[Exchange | Queue | Binding | Policy] = [
        *topology.exchanges,
        *topology.queues,
        *topology.bindings,
        *topology.policies,
    ]
    for entity in entities:
        topology.origins[Topology._origin_key(entity)] = str(path)
    return topology
