"""Tests for topology export: YAML that loads back, definitions JSON for import."""

from __future__ import annotations

import json

import pytest

from burrowmq import Binding, Exchange, Policy, Queue, Topology
from burrowmq.topology.export import export_topology, shared_topology
from burrowmq.topology.loader import parse_topology

pytestmark = pytest.mark.unit


def _topology() -> Topology:
    return Topology(
        exchanges=[
            Exchange(name="orders", type="topic"),
            Exchange(name="amq.topic", type="topic"),
        ],
        queues=[
            Queue(name="audit", arguments={"x-max-length": 10}),
            Queue(name="work", type="quorum"),
            Queue(name="orders.instance.abc", durable=False, exclusive=True, auto_delete=True),
        ],
        bindings=[
            Binding(source="orders", destination="audit", routing_key="order.#"),
            Binding(source="orders", destination="orders.instance.abc"),
        ],
        policies=[Policy(name="ttl", pattern="^audit$", definition={"message-ttl": 1000})],
    )


class TestSharedTopology:
    """Per-instance queues and predeclared exchanges are left out."""

    def test_drops_exclusive_queues_and_their_bindings(self) -> None:
        """An exclusive queue and the bindings to it disappear; the rest stays."""
        shared = shared_topology(_topology())
        assert [q.name for q in shared.queues] == ["audit", "work"]
        assert [b.destination for b in shared.bindings] == ["audit"]

    def test_drops_amq_exchanges(self) -> None:
        """amq.* exchanges are predeclared and cannot be imported."""
        assert [e.name for e in shared_topology(_topology()).exchanges] == ["orders"]


class TestExport:
    """Both formats carry x-queue-type; JSON carries a vhost on every entity."""

    def test_json_is_importable_definitions(self) -> None:
        """JSON has the four sections, vhost everywhere and explicit queue types."""
        data = json.loads(export_topology(_topology(), format="json", vhost="v1"))
        assert set(data) == {"exchanges", "queues", "bindings", "policies"}
        for section in data.values():
            assert all(item["vhost"] == "v1" for item in section)
        types = {q["name"]: q["arguments"]["x-queue-type"] for q in data["queues"]}
        assert types == {"audit": "classic", "work": "quorum"}
        assert data["policies"][0]["apply-to"] == "all"

    def test_json_defaults_to_root_vhost(self) -> None:
        """Without --vhost, JSON entities name the vhost '/'."""
        data = json.loads(export_topology(_topology(), format="json"))
        assert data["queues"][0]["vhost"] == "/"

    def test_yaml_loads_back(self) -> None:
        """The YAML export passes the loader and gives the same shared topology."""
        text = export_topology(_topology())
        loaded = parse_topology(text, file="export.yaml")
        assert not loaded.warnings
        assert [q.name for q in loaded.topology.queues] == ["audit", "work"]
        assert loaded.topology.queue("audit") == Queue(
            name="audit", arguments={"x-max-length": 10, "x-queue-type": "classic"}
        )
        assert loaded.topology.policies == _topology().policies
