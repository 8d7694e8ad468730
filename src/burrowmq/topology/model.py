"""Topology: exchanges, queues, bindings and policies, in RabbitMQ's definitions vocabulary.

The field names are those of a RabbitMQ definitions export (``rabbitmqctl
export_definitions``), so an export loads as is and our export imports with
``rabbitmqctl import_definitions``. Decorators and YAML both produce a
:class:`Topology`; :meth:`Topology.merge` joins them and refuses conflicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from burrowmq.exceptions import TopologyError

__all__ = [
    "Binding",
    "Exchange",
    "Policy",
    "Queue",
    "Topology",
]


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Exchange(_Entity):
    """An exchange, as in a definitions export.

    Args:
        name: the exchange name.
        type: ``direct``, ``fanout``, ``topic``, ``headers`` (or a plugin's ``x-*`` type).
        durable: survives a broker restart.
        auto_delete: deleted when its last binding goes.
        internal: takes no publishes from clients, only from other exchanges.
        arguments: e.g. ``alternate-exchange``.
        vhost: the virtual host, when the definition names one.
    """

    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)
    vhost: str | None = None

    @property
    def key(self) -> str:
        """Identity used to spot duplicates: the name."""
        return self.name

    def describe(self) -> str:
        """``exchange 'name'``, for messages."""
        return f"exchange {self.name!r}"


class Queue(_Entity):
    """A queue, as in a definitions export.

    ``exclusive`` is burrowmq's own (definitions never hold exclusive queues): it marks
    per-instance queues, which are never exported.

    Args:
        name: the queue name.
        durable: survives a broker restart (RabbitMQ 4 requires it unless exclusive).
        auto_delete: deleted when its last consumer goes.
        exclusive: owned by one connection and deleted with it.
        arguments: ``x-queue-type``, ``x-dead-letter-exchange``, ``x-max-length``, ...
        type: the queue type as newer exports write it; ``x-queue-type`` wins.
        vhost: the virtual host, when the definition names one.
    """

    name: str
    durable: bool = True
    auto_delete: bool = False
    exclusive: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)
    type: str | None = None
    vhost: str | None = None

    @property
    def key(self) -> str:
        """Identity used to spot duplicates: the name."""
        return self.name

    @property
    def queue_type(self) -> str:
        """The effective queue type: ``x-queue-type``, else ``type``, else classic."""
        value = self.arguments.get("x-queue-type") or self.type or "classic"
        return str(value)

    def describe(self) -> str:
        """``queue 'name'``, for messages."""
        return f"queue {self.name!r}"


class Binding(_Entity):
    """A binding of a queue or an exchange to a source exchange."""

    source: str
    destination: str
    destination_type: Literal["queue", "exchange"] = "queue"
    routing_key: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    vhost: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Identity: source, destination and its type, key and arguments."""
        return (
            self.source,
            self.destination_type,
            self.destination,
            self.routing_key,
            repr(sorted(self.arguments.items())),
        )

    def describe(self) -> str:
        """``binding 'src' -> queue 'dst' ('key')``, for messages."""
        return (
            f"binding {self.source!r} -> {self.destination_type} {self.destination!r} "
            f"({self.routing_key!r})"
        )


class Policy(_Entity):
    """A policy, as in a definitions export (applied through the management API)."""

    name: str
    pattern: str
    apply_to: Literal[
        "all", "exchanges", "queues", "classic_queues", "quorum_queues", "streams"
    ] = Field(default="all", alias="apply-to")
    priority: int = 0
    definition: dict[str, Any] = Field(default_factory=dict)
    vhost: str | None = None

    @property
    def key(self) -> str:
        """Identity used to spot duplicates: the name."""
        return self.name

    def describe(self) -> str:
        """``policy 'name'``, for messages."""
        return f"policy {self.name!r}"


_Kind = Exchange | Queue | Binding | Policy


_BUCKETS: dict[type, str] = {
    Exchange: "exchanges",
    Queue: "queues",
    Binding: "bindings",
    Policy: "policies",
}


def _settings(entity: _Kind) -> dict[str, Any]:
    return entity.model_dump(exclude={"vhost"})


def _differences(a: _Kind, b: _Kind) -> list[str]:
    left, right = _settings(a), _settings(b)
    out = []
    for field_name in left:
        if field_name == "arguments":
            la, ra = left["arguments"], right["arguments"]
            for arg in sorted(set(la) | set(ra)):
                if la.get(arg) != ra.get(arg):
                    out.append(f"arguments.{arg}: {la.get(arg)!r} != {ra.get(arg)!r}")
        elif left[field_name] != right[field_name]:
            out.append(f"{field_name}: {left[field_name]!r} != {right[field_name]!r}")
    return out


class Topology(BaseModel):
    """A set of exchanges, queues, bindings and policies.

    ``origins`` remembers, per entity, where it was declared (a handler, a file and line),
    so that conflicts name both sides.
    """

    model_config = ConfigDict(extra="forbid")

    exchanges: list[Exchange] = Field(default_factory=list)
    queues: list[Queue] = Field(default_factory=list)
    bindings: list[Binding] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    origins: dict[str, str] = Field(default_factory=dict, exclude=True)

    @staticmethod
    def _origin_key(entity: _Kind) -> str:
        return f"{type(entity).__name__}:{entity.key!r}"

    def origin_of(self, entity: _Kind) -> str | None:
        """Where ``entity`` was declared, if recorded."""
        return self.origins.get(self._origin_key(entity))

    def add(self, entity: _Kind, *, origin: str | None = None) -> None:
        """Add one entity; an equal one already present is fine, a different one is not.

        Raises:
            TopologyError: an entity of that kind and name exists with other settings.
        """
        bucket: list[Any] = getattr(self, _BUCKETS[type(entity)])
        for existing in bucket:
            if existing.key != entity.key:
                continue
            diffs = _differences(existing, entity)
            if diffs:
                here = self.origins.get(self._origin_key(existing), "an earlier declaration")
                there = origin or "another declaration"
                raise TopologyError(
                    f"{entity.describe()} is declared twice with different settings "
                    f"({here} and {there}): " + "; ".join(diffs),
                    entity=entity.describe(),
                    argument=diffs[0].split(":", 1)[0].removeprefix("arguments."),
                    source=origin,
                )
            return
        bucket.append(entity)
        if origin is not None:
            self.origins[self._origin_key(entity)] = origin

    def merge(self, other: Topology) -> Topology:
        """Return a new topology holding both; conflicting duplicates raise.

        Raises:
            TopologyError: the same entity is declared with different settings.
        """
        merged = Topology()
        for source in (self, other):
            for entity in _entities(source):
                merged.add(entity, origin=source.origin_of(entity))
        return merged

    def exchange(self, name: str) -> Exchange | None:
        """The exchange called ``name``, if declared."""
        return next((e for e in self.exchanges if e.name == name), None)

    def queue(self, name: str) -> Queue | None:
        """The queue called ``name``, if declared."""
        return next((q for q in self.queues if q.name == name), None)


def _entities(topology: Topology) -> Iterable[_Kind]:
    yield from topology.exchanges
    yield from topology.queues
    yield from topology.bindings
    yield from topology.policies
