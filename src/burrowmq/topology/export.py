"""Export: a topology written back out, as YAML or as RabbitMQ definitions JSON.

Per-instance (exclusive) queues and their bindings are left out: they belong to one
running process, and definitions cannot hold them. Every queue gets an explicit
``arguments.x-queue-type``, because ``rabbitmqctl import_definitions`` ignores a queue's
``type`` field. The JSON form carries a ``vhost`` on every entity, as
``rabbitmqctl import_definitions`` requires; the YAML form loads back with
:func:`~burrowmq.topology.loader.read_topology`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import yaml

from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Topology

__all__ = ["ExportFormat", "export_topology", "shared_topology", "to_definitions"]

ExportFormat = Literal["yaml", "json"]


def shared_topology(topology: Topology) -> Topology:
    """The part of a topology that outlives any one process.

    Drops exclusive queues and the bindings that lead to them, and the exchanges every
    virtual host predeclares (``amq.*``), which cannot be declared or imported.

    Args:
        topology: a topology, e.g. ``App.topology()``.

    Returns:
        A new topology without per-instance queues.
    """
    private = {q.name for q in topology.queues if q.exclusive}
    return Topology(
        exchanges=[e for e in topology.exchanges if e.name and not e.name.startswith("amq.")],
        queues=[q for q in topology.queues if not q.exclusive],
        bindings=[
            b
            for b in topology.bindings
            if not (b.destination_type == "queue" and b.destination in private)
        ],
        policies=list(topology.policies),
        origins=dict(topology.origins),
    )


def _exchange(exchange: Exchange) -> dict[str, Any]:
    return {
        "name": exchange.name,
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
        "arguments": dict(exchange.arguments),
    }


def _queue(queue: Queue) -> dict[str, Any]:
    arguments = dict(queue.arguments)
    arguments["x-queue-type"] = queue.queue_type
    return {
        "name": queue.name,
        "durable": queue.durable,
        "auto_delete": queue.auto_delete,
        "arguments": arguments,
    }


def _binding(binding: Binding) -> dict[str, Any]:
    return {
        "source": binding.source,
        "destination": binding.destination,
        "destination_type": binding.destination_type,
        "routing_key": binding.routing_key,
        "arguments": dict(binding.arguments),
    }


def _policy(policy: Policy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "pattern": policy.pattern,
        "apply-to": policy.apply_to,
        "priority": policy.priority,
        "definition": dict(policy.definition),
    }


def to_definitions(topology: Topology, *, vhost: str | None = None) -> dict[str, Any]:
    """The shared part of a topology in the definitions vocabulary.

    Args:
        topology: the topology.
        vhost: written on every entity when given (``import_definitions`` needs it).

    Returns:
        A mapping with ``exchanges``, ``queues``, ``bindings`` and ``policies``.
    """
    shared = shared_topology(topology)
    sections: dict[str, list[dict[str, Any]]] = {
        "exchanges": [_exchange(e) for e in shared.exchanges],
        "queues": [_queue(q) for q in shared.queues],
        "bindings": [_binding(b) for b in shared.bindings],
        "policies": [_policy(p) for p in shared.policies],
    }
    if vhost is not None:
        for items in sections.values():
            for item in items:
                item["vhost"] = vhost
    return dict(sections)


def export_topology(
    topology: Topology, *, format: ExportFormat = "yaml", vhost: str | None = None
) -> str:
    """Write a topology out.

    Args:
        topology: the topology, e.g. ``App.topology()``.
        format: ``"yaml"`` (reviewable, loads back) or ``"json"`` (definitions that
            ``rabbitmqctl import_definitions`` accepts).
        vhost: the virtual host to write on every entity; JSON defaults to ``"/"``.

    Returns:
        The text, ending in a newline.
    """
    if format == "json":
        data = to_definitions(topology, vhost=vhost or "/")
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    data = to_definitions(topology, vhost=vhost)
    header = "# burrowmq topology (RabbitMQ definitions vocabulary)\n"
    body = yaml.safe_dump(
        {key: value for key, value in data.items() if value},
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
    return header + body
