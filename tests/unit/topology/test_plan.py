"""Tests for plan: a topology compared with live entities, argument by argument."""

from __future__ import annotations

import pytest

from burrowmq import Binding, Exchange, Policy, Queue, Topology
from burrowmq.topology.plan import LiveState, compare

pytestmark = pytest.mark.unit

TOPOLOGY = Topology(
    exchanges=[Exchange(name="orders", type="topic")],
    queues=[
        Queue(name="audit", arguments={"x-queue-type": "quorum", "x-max-length": 20}),
        Queue(name="new"),
    ],
    bindings=[Binding(source="orders", destination="audit", routing_key="order.#")],
    policies=[Policy(name="ttl", pattern="^audit$", definition={"message-ttl": 1000})],
)


def _live(**overrides: object) -> LiveState:
    exchange = {
        "name": "orders",
        "type": "topic",
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }
    queue = {
        "name": "audit",
        "type": "quorum",
        "durable": True,
        "auto_delete": False,
        "exclusive": False,
        "arguments": {"x-queue-type": "quorum", "x-max-length": 20},
    }
    binding = {
        "source": "orders",
        "destination": "audit",
        "destination_type": "queue",
        "routing_key": "order.#",
        "arguments": {},
    }
    policy = {
        "name": "ttl",
        "pattern": "^audit$",
        "apply-to": "all",
        "priority": 0,
        "definition": {"message-ttl": 1000},
    }
    exchange.update(overrides.get("exchange", {}))  # type: ignore[arg-type]
    queue.update(overrides.get("queue", {}))  # type: ignore[arg-type]
    return LiveState(exchanges=[exchange], queues=[queue], bindings=[binding], policies=[policy])


class TestCompare:
    """Each entity is to create, present and matching, or present and differing."""

    def test_present_and_missing(self) -> None:
        """Live entities match; the missing queue is to be created."""
        plan = compare(TOPOLOGY, _live())
        assert [i.description for i in plan.of("create")] == ["queue 'new'"]
        assert len(plan.of("match")) == 4
        assert not plan.conflicts

    def test_argument_difference_names_both_values(self) -> None:
        """A different x-max-length is reported with the broker's and the file's value."""
        plan = compare(
            TOPOLOGY, _live(queue={"arguments": {"x-max-length": 10, "x-queue-type": "quorum"}})
        )
        (item,) = plan.conflicts
        assert item.differences == ("arguments.x-max-length: broker has 10, topology has 20",)
        assert "~ differs  queue 'audit'" in plan.render()

    def test_queue_type_difference(self) -> None:
        """A classic live queue differs from a quorum one in the topology."""
        plan = compare(
            TOPOLOGY, _live(queue={"type": "classic", "arguments": {"x-max-length": 20}})
        )
        (item,) = plan.conflicts
        assert item.differences == (
            "arguments.x-queue-type: broker has 'classic', topology has 'quorum'",
        )

    def test_exchange_flag_difference(self) -> None:
        """A live exchange of another type or durability differs."""
        plan = compare(TOPOLOGY, _live(exchange={"type": "direct", "durable": False}))
        (item,) = plan.conflicts
        assert item.differences == (
            "durable: broker has false, topology has true",
            "type: broker has 'direct', topology has 'topic'",
        )

    def test_policy_difference_is_not_a_conflict(self) -> None:
        """A differing policy is to be updated, not refused."""
        live = _live()
        live.policies[0]["definition"] = {"message-ttl": 5}  # type: ignore[index]
        plan = compare(TOPOLOGY, live)
        assert [i.description for i in plan.of("differ")] == ["policy 'ttl'"]
        assert not plan.conflicts

    def test_missing_binding_is_created(self) -> None:
        """A binding with another key counts as absent."""
        live = _live()
        live.bindings[0]["routing_key"] = "order.*"  # type: ignore[index]
        plan = compare(TOPOLOGY, live)
        assert "binding 'orders' -> queue 'audit' ('order.#')" in [
            i.description for i in plan.of("create")
        ]
