"""Topology: entities in RabbitMQ's definitions vocabulary, and conflict-checked merging."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from burrowmq.exceptions import TopologyError
from burrowmq.topology.model import Binding, Exchange, Policy, Queue, Topology

pytestmark = pytest.mark.unit

Entity = Exchange | Queue | Binding | Policy


def topology_of(*entities: Entity, origin: str | None = None) -> Topology:
    topo = Topology()
    for entity in entities:
        topo.add(entity, origin=origin)
    return topo


class TestAdd:
    """``Topology.add`` keeps one of each entity and refuses contradictions."""

    @pytest.mark.parametrize(
        ("entity", "bucket"),
        [
            (Exchange(name="orders", type="topic"), "exchanges"),
            (Queue(name="audit"), "queues"),
            (Binding(source="orders", destination="audit", routing_key="#"), "bindings"),
            (Policy(name="ttl", pattern="^audit$", definition={"message-ttl": 1000}), "policies"),
        ],
        ids=["exchange", "queue", "binding", "policy"],
    )
    def test_adds_to_its_bucket(self, entity: Entity, bucket: str) -> None:
        """Each kind of entity lands in its own list."""
        topo = topology_of(entity)
        assert getattr(topo, bucket) == [entity]

    @pytest.mark.parametrize(
        "entity",
        [
            Exchange(name="orders", type="topic", arguments={"alternate-exchange": "x"}),
            Queue(name="audit", arguments={"x-queue-type": "quorum"}),
            Binding(source="orders", destination="audit", routing_key="#"),
            Policy(name="ttl", pattern=".*"),
        ],
        ids=["exchange", "queue", "binding", "policy"],
    )
    def test_equal_duplicate_is_fine(self, entity: Entity) -> None:
        """Adding an equal entity again keeps one copy and raises nothing."""
        topo = topology_of(entity, entity.model_copy())
        assert len(topo.exchanges + topo.queues + topo.bindings + topo.policies) == 1

    def test_duplicate_differing_only_in_vhost_is_equal(self) -> None:
        """The vhost is not a setting: the same queue with and without one is not a conflict."""
        topo = topology_of(Queue(name="audit"), Queue(name="audit", vhost="/"))
        assert len(topo.queues) == 1

    def test_first_origin_is_kept_on_duplicate(self) -> None:
        """An equal duplicate does not overwrite where the entity was first declared."""
        topo = Topology()
        topo.add(Queue(name="audit"), origin="topology.yaml:3")
        topo.add(Queue(name="audit"), origin="handler app.audit")
        assert topo.origin_of(Queue(name="audit")) == "topology.yaml:3"

    def test_bindings_with_different_keys_are_distinct(self) -> None:
        """Bindings differing in routing key or arguments are different bindings."""
        topo = topology_of(
            Binding(source="orders", destination="audit", routing_key="a"),
            Binding(source="orders", destination="audit", routing_key="b"),
            Binding(source="docs", destination="audit", arguments={"x-match": "all", "f": 1}),
            Binding(source="docs", destination="audit", arguments={"x-match": "any", "f": 1}),
            Binding(
                source="orders", destination="audit", destination_type="exchange", routing_key="a"
            ),
        )
        assert len(topo.bindings) == 5

    def test_binding_arguments_order_does_not_matter(self) -> None:
        """Two bindings whose arguments differ only in order are the same binding."""
        topo = topology_of(
            Binding(source="docs", destination="q", arguments={"a": 1, "b": 2}),
            Binding(source="docs", destination="q", arguments={"b": 2, "a": 1}),
        )
        assert len(topo.bindings) == 1

    @pytest.mark.parametrize(
        ("first", "second", "entity", "argument"),
        [
            (
                Exchange(name="orders", type="direct"),
                Exchange(name="orders", type="topic"),
                "exchange 'orders'",
                "type",
            ),
            (
                Exchange(name="orders"),
                Exchange(name="orders", durable=False),
                "exchange 'orders'",
                "durable",
            ),
            (
                Queue(name="audit"),
                Queue(name="audit", auto_delete=True),
                "queue 'audit'",
                "auto_delete",
            ),
            (
                Queue(name="audit", arguments={"x-queue-type": "quorum"}),
                Queue(name="audit", arguments={"x-queue-type": "classic"}),
                "queue 'audit'",
                "x-queue-type",
            ),
            (
                Queue(name="audit", arguments={"x-max-length": 10}),
                Queue(name="audit"),
                "queue 'audit'",
                "x-max-length",
            ),
            (
                Policy(name="ttl", pattern="^a$"),
                Policy(name="ttl", pattern="^b$"),
                "policy 'ttl'",
                "pattern",
            ),
        ],
        ids=[
            "exchange-type",
            "exchange-durable",
            "queue-auto-delete",
            "queue-type",
            "queue-max-length",
            "policy-pattern",
        ],
    )
    def test_conflicting_duplicate(
        self, first: Entity, second: Entity, entity: str, argument: str
    ) -> None:
        """A same-named entity with other settings raises, naming the entity, both origins and the argument."""
        topo = Topology()
        topo.add(first, origin="topology.yaml:12")
        with pytest.raises(TopologyError) as info:
            topo.add(second, origin="handler app.audit")
        error = info.value
        assert error.entity == entity
        assert error.source == "handler app.audit"
        message = str(error)
        assert message.startswith(f"{entity} is declared twice with different settings")
        assert "topology.yaml:12" in message
        assert "handler app.audit" in message
        assert argument in message
        assert argument in (error.argument or "")

    def test_conflict_shows_both_values(self) -> None:
        """The message shows the value on each side of the conflict."""
        topo = topology_of(Exchange(name="orders", type="direct"))
        with pytest.raises(TopologyError, match="type: 'direct' != 'topic'"):
            topo.add(Exchange(name="orders", type="topic"))

    def test_conflict_lists_every_difference(self) -> None:
        """Every differing setting is listed, not only the first."""
        topo = topology_of(Queue(name="q", arguments={"x-max-length": 1}))
        with pytest.raises(TopologyError) as info:
            topo.add(Queue(name="q", durable=False, arguments={"x-max-length": 2}))
        assert "durable: True != False" in str(info.value)
        assert "arguments.x-max-length: 1 != 2" in str(info.value)

    def test_conflict_without_origins(self) -> None:
        """Without recorded origins, the message still says there are two declarations."""
        topo = topology_of(Queue(name="q"))
        with pytest.raises(TopologyError, match="an earlier declaration and another declaration"):
            topo.add(Queue(name="q", durable=False))

    def test_conflicting_entity_is_not_added(self) -> None:
        """After a conflict the topology still holds only the first declaration."""
        topo = topology_of(Queue(name="q"))
        with pytest.raises(TopologyError):
            topo.add(Queue(name="q", durable=False))
        assert topo.queues == [Queue(name="q")]

    @pytest.mark.parametrize(
        ("first", "second"),
        [
            (
                Queue(name="q", arguments={"x-max-length": 1}),
                Queue(name="q", arguments={"x-max-length": 2}),
            ),
            (Queue(name="q"), Queue(name="q", arguments={"x-message-ttl": 5})),
        ],
    )
    def test_conflicting_argument_is_named_as_rabbitmq_names_it(
        self, first: Queue, second: Queue
    ) -> None:
        """``TopologyError.argument`` is the bare argument name, e.g. ``x-max-length``."""
        topo = topology_of(first)
        with pytest.raises(TopologyError) as info:
            topo.add(second)
        (name,) = set(first.arguments) | set(second.arguments)
        assert info.value.argument == name

    def test_same_name_different_kinds_do_not_conflict(self) -> None:
        """An exchange and a queue may share a name."""
        topo = topology_of(Exchange(name="audit"), Queue(name="audit"))
        assert (len(topo.exchanges), len(topo.queues)) == (1, 1)

    def test_lookup(self) -> None:
        """``exchange(name)`` and ``queue(name)`` find declared entities, else ``None``."""
        topo = topology_of(Exchange(name="orders"), Queue(name="audit"))
        assert topo.exchange("orders") == Exchange(name="orders")
        assert topo.queue("audit") == Queue(name="audit")
        assert topo.exchange("audit") is None
        assert topo.queue("orders") is None


class TestMerge:
    """``Topology.merge`` joins two topologies into a new one."""

    def test_merge_joins(self) -> None:
        """The merged topology holds the entities of both, each once."""
        shared = Exchange(name="orders", type="topic")
        left = topology_of(shared, Queue(name="a"), origin="topology.yaml")
        right = topology_of(shared, Queue(name="b"), origin="handler app.b")
        merged = left.merge(right)
        assert merged.exchanges == [shared]
        assert [q.name for q in merged.queues] == ["a", "b"]

    def test_merge_leaves_both_unchanged(self) -> None:
        """Merging returns a new topology and changes neither side."""
        left = topology_of(Queue(name="a"))
        right = topology_of(Queue(name="b"))
        merged = left.merge(right)
        assert merged is not left and merged is not right
        assert [q.name for q in left.queues] == ["a"]
        assert [q.name for q in right.queues] == ["b"]

    def test_merge_keeps_origins(self) -> None:
        """Origins of both sides are carried into the merged topology."""
        left = topology_of(Queue(name="a"), origin="topology.yaml:4")
        right = topology_of(Queue(name="b"), origin="handler app.b")
        merged = left.merge(right)
        assert merged.origin_of(Queue(name="a")) == "topology.yaml:4"
        assert merged.origin_of(Queue(name="b")) == "handler app.b"

    def test_merge_conflict_names_both_origins(self) -> None:
        """A conflict between the two sides names the entity, both origins and the argument."""
        left = topology_of(Exchange(name="orders", type="direct"), origin="topology.yaml:7")
        right = topology_of(Exchange(name="orders", type="topic"), origin="handler app.audit")
        with pytest.raises(TopologyError) as info:
            left.merge(right)
        assert info.value.entity == "exchange 'orders'"
        assert info.value.argument == "type"
        assert info.value.source == "handler app.audit"
        assert "topology.yaml:7" in str(info.value)
        assert "handler app.audit" in str(info.value)

    def test_merge_with_empty(self) -> None:
        """Merging with an empty topology gives an equal copy."""
        topo = topology_of(
            Exchange(name="x"), Queue(name="q"), Binding(source="x", destination="q")
        )
        assert topo.merge(Topology()) == topo
        assert Topology().merge(topo) == topo


class TestQueueType:
    """``Queue.queue_type`` is the effective type."""

    @pytest.mark.parametrize(
        ("queue", "queue_type"),
        [
            (Queue(name="q"), "classic"),
            (Queue(name="q", type="quorum"), "quorum"),
            (Queue(name="q", arguments={"x-queue-type": "stream"}), "stream"),
            (Queue(name="q", type="classic", arguments={"x-queue-type": "quorum"}), "quorum"),
            (Queue(name="q", type="quorum", arguments={"x-max-length": 1}), "quorum"),
        ],
        ids=["default", "type", "argument", "argument-wins", "type-with-other-args"],
    )
    def test_queue_type(self, queue: Queue, queue_type: str) -> None:
        """``x-queue-type`` wins, else ``type``, else classic."""
        assert queue.queue_type == queue_type


class TestEntities:
    """Entities use the definitions field names and refuse unknown ones."""

    def test_policy_apply_to_alias(self) -> None:
        """A policy reads ``apply-to`` as in a definitions export, and writes it back so."""
        policy = Policy.model_validate(
            {"name": "ttl", "pattern": ".*", "apply-to": "queues", "definition": {"message-ttl": 5}}
        )
        assert policy.apply_to == "queues"
        assert policy.model_dump(by_alias=True)["apply-to"] == "queues"

    def test_policy_apply_to_by_name(self) -> None:
        """``apply_to=`` is accepted as the Python name."""
        assert Policy(name="ttl", pattern=".*", apply_to="exchanges").apply_to == "exchanges"

    def test_policy_apply_to_defaults_to_all(self) -> None:
        """Without ``apply-to``, a policy applies to all."""
        assert Policy(name="ttl", pattern=".*").apply_to == "all"

    def test_policy_bad_apply_to(self) -> None:
        """An ``apply-to`` RabbitMQ does not know is refused."""
        with pytest.raises(ValidationError):
            Policy.model_validate({"name": "ttl", "pattern": ".*", "apply-to": "everything"})

    @pytest.mark.parametrize(
        ("model", "data"),
        [
            (Exchange, {"name": "x", "colour": "red"}),
            (Queue, {"name": "q", "max_length": 5}),
            (Binding, {"source": "x", "destination": "q", "key": "k"}),
            (Policy, {"name": "p", "pattern": ".*", "applyto": "all"}),
        ],
    )
    def test_unknown_fields_are_refused(self, model: type[Any], data: dict[str, Any]) -> None:
        """A field not in the definitions vocabulary is refused."""
        with pytest.raises(ValidationError):
            model.model_validate(data)

    @pytest.mark.parametrize(
        ("entity", "described"),
        [
            (Exchange(name="orders"), "exchange 'orders'"),
            (Queue(name="audit"), "queue 'audit'"),
            (Policy(name="ttl", pattern=".*"), "policy 'ttl'"),
            (
                Binding(source="orders", destination="audit", routing_key="#"),
                "binding 'orders' -> queue 'audit' ('#')",
            ),
        ],
    )
    def test_describe(self, entity: Entity, described: str) -> None:
        """Each entity describes itself for messages."""
        assert entity.describe() == described

    def test_entities_are_frozen(self) -> None:
        """Entities cannot be changed after they are made."""
        with pytest.raises(ValidationError):
            Queue(name="q").name = "other"  # type: ignore[misc]

    def test_defaults(self) -> None:
        """Exchanges and queues are durable, not auto-delete, by default."""
        exchange, queue = Exchange(name="x"), Queue(name="q")
        assert (exchange.type, exchange.durable, exchange.auto_delete, exchange.internal) == (
            "direct",
            True,
            False,
            False,
        )
        assert (queue.durable, queue.auto_delete, queue.exclusive) == (True, False, False)
