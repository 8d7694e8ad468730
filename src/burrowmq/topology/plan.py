"""Plan: a topology compared with what a live virtual host holds.

Each exchange, queue, binding and policy is either to be created, present and matching,
or present with other settings (listed argument by argument). The live state is read
through the management API; :func:`compare` itself is pure and takes the API's answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from burrowmq.topology.export import shared_topology
from burrowmq.topology.management import ManagementClient
from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Topology

__all__ = ["LiveState", "Plan", "PlanItem", "compare", "read_live", "read_plan"]

Action = Literal["create", "match", "differ"]
Entity = Exchange | Queue | Binding | Policy


@dataclass(frozen=True, slots=True)
class PlanItem:
    """What apply would do with one entity.

    Attributes:
        action: ``"create"`` (absent), ``"match"`` (present, same settings) or
            ``"differ"`` (present, other settings).
        entity: the entity as the topology wants it.
        differences: for ``"differ"``, one line per setting:
            ``"arguments.x-max-length: broker has 10, topology has 20"``.
    """

    action: Action
    entity: Entity
    differences: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The entity, for messages: ``queue 'billing.charge'``."""
        return self.entity.describe()


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a virtual host holds, as the management API lists it."""

    exchanges: Sequence[Mapping[str, Any]] = ()
    queues: Sequence[Mapping[str, Any]] = ()
    bindings: Sequence[Mapping[str, Any]] = ()
    policies: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """A topology compared with a live virtual host.

    Attributes:
        vhost: the virtual host compared with.
        items: one per entity, in declaration order (exchanges, queues, bindings,
            policies).
    """

    vhost: str
    items: tuple[PlanItem, ...]

    def of(self, action: Action) -> tuple[PlanItem, ...]:
        """The items with ``action``."""
        return tuple(item for item in self.items if item.action == action)

    @property
    def conflicts(self) -> tuple[PlanItem, ...]:
        """Exchanges and queues that differ: apply refuses to touch them."""
        return tuple(
            item for item in self.of("differ") if isinstance(item.entity, Exchange | Queue)
        )

    def render(self) -> str:
        """The plan as text, one line per entity and one per difference."""
        marks = {"create": "+ create ", "match": "= present", "differ": "~ differs"}
        lines = [f"plan for vhost {self.vhost!r}:"]
        for item in self.items:
            lines.append(f"  {marks[item.action]}  {item.description}")
            if item.action == "differ":
                verb = "update" if isinstance(item.entity, Policy) else "conflict"
                lines.extend(f"        {verb}: {d}" for d in item.differences)
        lines.append(
            f"{len(self.of('create'))} to create, {len(self.of('match'))} present and "
            f"matching, {len(self.of('differ'))} differing"
        )
        return "\n".join(lines)


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _same(wanted: Any, live: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(live, bool):
        return wanted is live or (wanted is None and live is None)
    return bool(wanted == live)


def _diff(prefix: str, wanted: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(wanted) | set(live)):
        if not _same(wanted.get(key), live.get(key)):
            out.append(
                f"{prefix}{key}: broker has {_show(live.get(key))}, "
                f"topology has {_show(wanted.get(key))}"
            )
    return out


def _exchange_differences(exchange: Exchange, live: Mapping[str, Any]) -> list[str]:
    wanted = {
        "type": exchange.type,
        "durable": exchange.durable,
        "auto_delete": exchange.auto_delete,
        "internal": exchange.internal,
    }
    have = {key: live.get(key) for key in wanted}
    return _diff("", wanted, have) + _diff(
        "arguments.", exchange.arguments, live.get("arguments") or {}
    )


def _queue_differences(queue: Queue, live: Mapping[str, Any]) -> list[str]:
    live_arguments = dict(live.get("arguments") or {})
    live_type = live.get("type") or live_arguments.get("x-queue-type") or "classic"
    wanted = {"durable": queue.durable, "auto_delete": queue.auto_delete}
    have = {key: live.get(key) for key in wanted}
    out = _diff("", wanted, have)
    if queue.queue_type != live_type:
        out.append(
            f"arguments.x-queue-type: broker has {live_type!r}, topology has {queue.queue_type!r}"
        )
    arguments = {k: v for k, v in queue.arguments.items() if k != "x-queue-type"}
    live_arguments.pop("x-queue-type", None)
    return out + _diff("arguments.", arguments, live_arguments)


def _policy_differences(policy: Policy, live: Mapping[str, Any]) -> list[str]:
    wanted = {"pattern": policy.pattern, "apply-to": policy.apply_to, "priority": policy.priority}
    have = {key: live.get(key) for key in wanted}
    return _diff("", wanted, have) + _diff(
        "definition.", policy.definition, live.get("definition") or {}
    )


def _binding_key(source: Any, kind: Any, destination: Any, key: Any, args: Any) -> str:
    return repr((source, kind, destination, key, sorted((args or {}).items())))


def compare(topology: Topology, live: LiveState, *, vhost: str = "/") -> Plan:
    """Compare a topology with a virtual host's live entities.

    Per-instance (exclusive) queues are left out: they belong to running processes.

    Args:
        topology: what should exist.
        live: what exists, as the management API lists it.
        vhost: the virtual host's name, for the report.

    Returns:
        The plan.
    """
    shared = shared_topology(topology)
    by_name = {
        "exchanges": {e.get("name"): e for e in live.exchanges},
        "queues": {q.get("name"): q for q in live.queues},
        "policies": {p.get("name"): p for p in live.policies},
    }
    items: list[PlanItem] = []

    def judge(entity: Entity, found: Mapping[str, Any] | None, differences: Any) -> None:
        if found is None:
            items.append(PlanItem("create", entity))
            return
        found_differences = tuple(differences(entity, found))
        action: Action = "differ" if found_differences else "match"
        items.append(PlanItem(action, entity, found_differences))

    for exchange in shared.exchanges:
        judge(exchange, by_name["exchanges"].get(exchange.name), _exchange_differences)
    for queue in shared.queues:
        judge(queue, by_name["queues"].get(queue.name), _queue_differences)
    live_bindings = {
        _binding_key(
            b.get("source"),
            b.get("destination_type"),
            b.get("destination"),
            b.get("routing_key"),
            b.get("arguments"),
        )
        for b in live.bindings
    }
    for binding in shared.bindings:
        key = _binding_key(
            binding.source,
            binding.destination_type,
            binding.destination,
            binding.routing_key,
            binding.arguments,
        )
        items.append(PlanItem("match" if key in live_bindings else "create", binding))
    for policy in shared.policies:
        judge(policy, by_name["policies"].get(policy.name), _policy_differences)
    return Plan(vhost, tuple(items))


async def read_live(client: ManagementClient) -> LiveState:
    """Read a virtual host's exchanges, queues, bindings and policies.

    Raises:
        TransportError: the management API cannot be reached, refused, or the virtual
            host does not exist.
    """
    await client.check_vhost()
    return LiveState(
        exchanges=await client.list("exchanges"),
        queues=await client.list("queues"),
        bindings=await client.list("bindings"),
        policies=await client.list("policies"),
    )


async def read_plan(topology: Topology, client: ManagementClient) -> Plan:
    """Compare a topology with the live virtual host ``client`` reads.

    Raises:
        TransportError: the management API cannot be reached, refused, or the virtual
            host does not exist.
    """
    return compare(topology, await read_live(client), vhost=client.vhost)
