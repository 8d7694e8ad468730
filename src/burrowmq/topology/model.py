"""Topology: exchanges, queues, bindings and policies, in RabbitMQ's definitions vocabulary.

The field names are those of a RabbitMQ definitions export (``rabbitmqctl
export_definitions``), so an export loads as is and our export imports with
``rabbitmqctl import_definitions``. Decorators and YAML both produce a
:class:`Topology`; :meth:`Topology.merge` joins them and refuses conflicts.

:class:`Stream` is burrowmq's shorthand for a stream, or, with ``partitions=N``, a
*super stream* laid out as RabbitMQ lays one out (``rabbitmq-streams add_super_stream``):
a direct exchange ``name`` (``x-super-stream: true``) and the streams ``name-0`` ..
``name-(N-1)``, bound with the routing keys ``"0"`` .. ``"N-1"`` and the binding argument
``x-stream-partition-order`` = i. Adding one to a topology adds those entities.
:func:`partition_of` picks a key's partition as RabbitMQ's stream clients do, so that
every super-stream producer agrees on where a key goes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import mmh3
from pydantic import BaseModel, ConfigDict, Field, field_validator

from burrowmq.exceptions import TopologyError

__all__ = [
    "PARTITION_ORDER",
    "Binding",
    "Exchange",
    "Policy",
    "Queue",
    "Stream",
    "Topology",
    "partition_of",
]

PARTITION_ORDER = "x-stream-partition-order"
"""The binding argument that numbers a super stream's partitions."""
_HASH_SEED = 104729  # the seed of RabbitMQ's stream clients' murmur3 routing


def partition_of(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as RabbitMQ's stream clients pick it.

    MurmurHash3 (x86, 32 bits, seed 104729) of the key's UTF-8 bytes, taken as unsigned,
    modulo the number of partitions.

    Raises:
        ValueError: ``partitions`` is below 1.
    """
    if partitions < 1:
        raise ValueError(f"partition_of() needs at least one partition, got {partitions}")
    return mmh3.hash(key.encode("utf-8"), _HASH_SEED, signed=False) % partitions


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


class Stream(_Entity):
    """A stream, or with ``partitions`` a super stream (a partitioned stream).

    Args:
        name: the stream's name; of a super stream, its exchange's (the partitions are
            ``name-0`` .. ``name-(N-1)``).
        partitions: how many partitions (``None``: one plain stream).
        arguments: the streams' arguments besides ``x-queue-type`` (retention:
            ``x-max-age``, ``x-max-length-bytes``).
    """

    name: str
    partitions: int | None = Field(default=None, strict=True)
    arguments: dict[str, Any] = Field(default_factory=dict)

    def __init__(
        self,
        name: str,
        *,
        partitions: int | None = None,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "name": name,
            "partitions": partitions,
            "arguments": arguments or {},
        }
        super().__init__(**fields)

    @field_validator("partitions")
    @classmethod
    def _at_least_one(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"partitions must be at least 1, got {value!r}")
        return value

    @property
    def streams(self) -> tuple[str, ...]:
        """The names of its streams: ``name``, or ``name-0`` .. ``name-(N-1)``."""
        if self.partitions is None:
            return (self.name,)
        return tuple(f"{self.name}-{i}" for i in range(self.partitions))

    def entities(self) -> list[Exchange | Queue | Binding]:
        """What it is made of on the broker."""
        arguments = {**self.arguments, "x-queue-type": "stream"}
        queues = [Queue(name=name, arguments=arguments) for name in self.streams]
        if self.partitions is None:
            return list(queues)
        exchange = Exchange(name=self.name, type="direct", arguments={"x-super-stream": True})
        bindings = [
            Binding(
                source=self.name,
                destination=queue.name,
                routing_key=str(i),
                arguments={PARTITION_ORDER: i},
            )
            for i, queue in enumerate(queues)
        ]
        return [exchange, *queues, *bindings]


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

    def add(self, entity: _Kind | Stream, *, origin: str | None = None) -> None:
        """Add one entity (a :class:`Stream`: what it is made of); an equal one already
        present is fine, a different one is not.

        Raises:
            TopologyError: an entity of that kind and name exists with other settings.
        """
        if isinstance(entity, Stream):
            for part in entity.entities():
                self.add(part, origin=origin)
            return
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

    def partition_keys(self, exchange: str) -> tuple[str, ...]:
        """The routing keys of the super stream ``exchange``'s partitions, in their order.

        Read from its bindings with ``x-stream-partition-order``, as stream clients find
        them; empty when ``exchange`` is no super stream here.
        """
        ordered = sorted(
            (binding.arguments[PARTITION_ORDER], binding.routing_key)
            for binding in self.bindings
            if binding.source == exchange and PARTITION_ORDER in binding.arguments
        )
        return tuple(key for _, key in ordered)


def _entities(topology: Topology) -> Iterable[_Kind]:
    yield from topology.exchanges
    yield from topology.queues
    yield from topology.bindings
    yield from topology.policies
