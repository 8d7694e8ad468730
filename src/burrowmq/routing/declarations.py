"""Declarations: what a set of routes needs on the broker, and the check of what it may not declare.

Each route knows its own needs (:meth:`~burrowmq.routing.route.Route.topology`); this
module joins those of an App's routes, refuses two handlers on one queue, and checks
that queues the routes consume without declaring them exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from burrowmq.exceptions import ConfigurationError, TopologyError
from burrowmq.framework.transport import Transport
from burrowmq.routing.delay import delivery_binding, ladder_topology, routable
from burrowmq.routing.retry import DEFAULT_RETRY, Retry
from burrowmq.routing.route import Route
from burrowmq.topology.model import Topology

__all__ = ["check_queues_exist", "routes_topology", "undeclared_queues", "verify_topology"]


def routes_topology(
    routes: Sequence[Route], instance_id: str, *, retry: Retry = DEFAULT_RETRY
) -> Topology:
    """Everything ``routes`` need declared, for the instance ``instance_id``.

    That includes the delay ladder and the way back from it to each queue whose retry
    policy (``retry`` for routes without one) sends waits through the broker, as far as
    they can be foreseen (a random wait is sampled); else they are declared when first
    used.

    Raises:
        ConfigurationError: two handlers consume one queue (RPC routes of one service
            share theirs).
        TopologyError: the routes' declarations contradict each other.
    """
    declared = Topology()
    seen: dict[str, Route] = {}
    for route in routes:
        queue = route.queue_name(instance_id)
        if queue in seen and not (route.procedure and seen[queue].procedure):
            raise ConfigurationError(
                f"queue {queue!r} is consumed by two handlers ({seen[queue].name} and "
                f"{route.name}); each delivery would reach only one of them"
            )
        seen[queue] = route
        declared = declared.merge(route.topology(instance_id))
        policy = route.retry or (retry if route.procedure is None else None)
        parks = policy is not None and route.procedure is None and route.queue is not None
        if parks and policy is not None and policy.broker_waits():
            ladder = ladder_topology()
            if routable(queue):
                ladder.add(delivery_binding(queue), origin=f"handler {route.name}")
            declared = declared.merge(ladder)
    return declared


def undeclared_queues(
    routes: Sequence[Route], topology: Topology, instance_id: str
) -> tuple[str, ...]:
    """The queues ``routes`` consume that neither they nor ``topology`` declare."""
    return tuple(
        route.queue_name(instance_id)
        for route in routes
        if not route.declare_queue and topology.queue(route.queue_name(instance_id)) is None
    )


async def check_queues_exist(transport: Transport, names: Sequence[str]) -> None:
    """Check, passively, that every queue in ``names`` exists on the broker.

    Raises:
        TopologyError: the first queue that does not exist, named.
    """
    for name in names:
        try:
            await transport.declare_queue(name, passive=True)
        except TopologyError as exc:
            raise TopologyError(
                f"queue {name!r} is consumed but declared nowhere and does not exist on "
                "the broker: declare it in the topology YAML, or pass queue_options= "
                "to router.consume()",
                entity=f"queue {name!r}",
            ) from exc


async def verify_topology(
    transport: Transport, topology: Topology, external: Sequence[str] = ()
) -> None:
    """Check, passively, that every exchange and queue of ``topology`` exists.

    For an App that declares nothing (``declare=False``): the topology was applied by an
    operator. Per-instance (exclusive) queues are still declared, as they must be by
    their owner; bindings cannot be checked over AMQP and are trusted.

    Raises:
        TopologyError: the first entity missing, named, with what to do.
    """
    for exchange in topology.exchanges:
        await _exists(
            transport,
            exchange.describe(),
            transport.declare_exchange(exchange.name, exchange.type, passive=True),
        )
    for queue in topology.queues:
        if queue.exclusive:
            arguments = dict(queue.arguments)
            await transport.declare_queue(
                queue.name, durable=False, exclusive=True, auto_delete=True, arguments=arguments
            )
            continue
        await _exists(
            transport, queue.describe(), transport.declare_queue(queue.name, passive=True)
        )
    for name in external:
        await _exists(transport, f"queue {name!r}", transport.declare_queue(name, passive=True))
    exclusive = {q.name for q in topology.queues if q.exclusive}
    for binding in topology.bindings:
        if binding.destination_type == "queue" and binding.destination in exclusive:
            await transport.bind_queue(
                binding.destination, binding.source, binding.routing_key, binding.arguments
            )


async def _exists(transport: Transport, entity: str, check: Any) -> None:
    try:
        await check
    except TopologyError as exc:
        raise TopologyError(
            f"{entity} does not exist on the broker, and this app declares nothing "
            "(App(declare=False)): declare it (burrowmq topology apply), or let the app "
            f"declare it ({exc})",
            entity=entity,
        ) from exc
