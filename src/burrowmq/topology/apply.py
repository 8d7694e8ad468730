"""Apply: declare a topology on a live broker, idempotently, never deleting anything.

Exchanges, queues and bindings are declared over AMQP on the transport's dedicated
declaration channel; policies go through the management API (AMQP cannot set them).
When the management API is available the live state is read first, so that the report
tells what was created and what was already there, and so that an exchange or queue that
exists with other settings stops the run before anything is declared. Without it, the
broker's own 406 PRECONDITION_FAILED does the same job, one entity at a time. Nothing is
ever deleted or recreated; a differing policy is updated in place (policies exist to be
changed at runtime).
"""

from __future__ import annotations

from dataclasses import dataclass

from burrowmq.exceptions import TopologyError
from burrowmq.framework.transport import Transport
from burrowmq.topology.export import shared_topology
from burrowmq.topology.management import ManagementClient
from burrowmq.topology.model import Policy, Topology
from burrowmq.topology.plan import Plan, read_plan

__all__ = ["ApplyReport", "apply_topology", "declare_topology"]


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What an apply did.

    Attributes:
        created: entities that did not exist before (empty when unknown).
        present: entities that already existed with the same settings.
        updated: policies that existed with other settings and were updated.
        declared: every entity declared over AMQP.
        planned: whether the live state was read first (the management API answered),
            so that ``created`` and ``present`` are known.
    """

    created: tuple[str, ...]
    present: tuple[str, ...]
    updated: tuple[str, ...]
    declared: tuple[str, ...]
    planned: bool

    @property
    def changed(self) -> bool:
        """Whether the broker holds anything it did not hold before (unknown: True)."""
        return bool(self.created or self.updated) or not self.planned

    def render(self) -> str:
        """The report as text."""
        if not self.planned:
            return (
                f"declared {len(self.declared)} entities (without the management API, "
                "new and existing ones cannot be told apart)"
            )
        lines = [f"  + created  {what}" for what in self.created]
        lines += [f"  ~ updated  {what}" for what in self.updated]
        if not lines:
            return f"nothing to do: all {len(self.present)} entities present and matching"
        lines.append(
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.present)} already present"
        )
        return "\n".join(lines)


def _refuse(plan: Plan) -> TopologyError:
    conflicts = plan.conflicts
    first = conflicts[0]
    lines = [
        f"  {item.description}: {difference}"
        for item in conflicts
        for difference in item.differences
    ]
    return TopologyError(
        f"cannot apply: {len(conflicts)} "
        f"{'entity exists' if len(conflicts) == 1 else 'entities exist'} on the broker "
        "(vhost "
        f"{plan.vhost!r}) with other settings, and burrowmq never deletes or recreates "
        "anything on its own: change the topology, or change the entity on the broker\n"
        + "\n".join(lines),
        entity=first.description,
        argument=first.differences[0].split(":", 1)[0].removeprefix("arguments."),
    )


async def declare_topology(transport: Transport, topology: Topology) -> list[str]:
    """Declare every exchange, queue and binding of ``topology`` (policies aside).

    Idempotent: what exists with the same settings is left as it is. Used by
    ``burrowmq topology apply`` and by the App on every (re)connection.

    Returns:
        The entities declared, described for messages.

    Raises:
        TopologyError: the broker refused one (it exists with other settings).
    """
    declared = []
    for exchange in topology.exchanges:
        await transport.declare_exchange(
            exchange.name,
            exchange.type,
            durable=exchange.durable,
            auto_delete=exchange.auto_delete,
            internal=exchange.internal,
            arguments=exchange.arguments,
        )
        declared.append(exchange.describe())
    for queue in topology.queues:
        arguments = dict(queue.arguments)
        if queue.type and "x-queue-type" not in arguments:
            arguments["x-queue-type"] = queue.type
        await transport.declare_queue(
            queue.name,
            durable=queue.durable,
            exclusive=queue.exclusive,
            auto_delete=queue.auto_delete,
            arguments=arguments,
        )
        declared.append(queue.describe())
    for binding in topology.bindings:
        if binding.destination_type == "queue":
            await transport.bind_queue(
                binding.destination, binding.source, binding.routing_key, binding.arguments
            )
        else:
            await transport.bind_exchange(
                binding.destination, binding.source, binding.routing_key, binding.arguments
            )
        declared.append(binding.describe())
    return declared


async def apply_topology(
    topology: Topology,
    transport: Transport,
    *,
    client: ManagementClient | None = None,
) -> ApplyReport:
    """Declare a topology on the broker ``transport`` is connected to.

    Per-instance (exclusive) queues are left out. Declaring is idempotent: a second
    apply of the same topology creates nothing.

    Args:
        topology: what should exist.
        transport: a connected transport (its declaration channel is used).
        client: the management API of the same virtual host; needed for policies, and
            to report what was created.

    Returns:
        What was created, found, updated and declared.

    Raises:
        TopologyError: an exchange or queue exists with other settings (the entity and
            both values are named), or policies are to be applied without ``client``.
        TransportError: the broker or its management API failed.
    """
    shared = shared_topology(topology)
    if shared.policies and client is None:
        raise TopologyError(
            "policies can only be applied through the management API: enable the "
            "rabbitmq_management plugin, or pass --management-url",
            entity=shared.policies[0].describe(),
        )
    plan = await read_plan(shared, client) if client is not None else None
    if plan is not None and plan.conflicts:
        raise _refuse(plan)
    declared = await declare_topology(transport, shared)
    updated: list[str] = []
    if client is not None and plan is not None:
        for item in plan.items:
            policy = item.entity
            if item.action == "match" or not isinstance(policy, Policy):
                continue
            await client.put_policy(
                policy.name,
                pattern=policy.pattern,
                definition=dict(policy.definition),
                apply_to=policy.apply_to,
                priority=policy.priority,
            )
            if item.action == "differ":
                updated.append(item.description)
    if plan is None:
        return ApplyReport((), (), (), tuple(declared), planned=False)
    return ApplyReport(
        created=tuple(item.description for item in plan.of("create")),
        present=tuple(item.description for item in plan.of("match")),
        updated=tuple(updated),
        declared=tuple(declared),
        planned=True,
    )
