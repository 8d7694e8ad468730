"""RabbitMQ's own definitions test files load as RabbitMQ's import loads them.

The files in tests/data/definitions are copied from rabbitmq/rabbitmq-server,
deps/rabbit/test/definition_import_SUITE_data (see the README there). The outcome each
test expects is the one ``definition_import_SUITE.erl`` asserts for the same file:
``import_file_case`` (imported), ``import_invalid_file_case*`` (refused). That suite
permits the deprecated features ``transient_nonexcl_queues`` and ``queue_master_locator``
(``init_per_suite``); burrowmq's equivalent is a RabbitMQ 3 target, so those files are
loaded with ``x-burrowmq: {rabbitmq: "3.13"}`` added (on the first line, so that every
line number stays the file's own). Differences that are out of scope say why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from burrowmq import Binding, Exchange, Queue, TopologyError
from burrowmq.topology.document import JsonProblem
from burrowmq.topology.loader import LoadedTopology, parse_topology, read_topology

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data" / "definitions"

# Files the suite imports (import_file_case, the round trips) that hold no exchanges,
# queues, bindings or policies: users, vhosts, permissions, limits, global parameters and
# operator policies (parameters), which a topology accepts and ignores.
NO_TOPOLOGY = [
    "case2.json",
    "case5.json",
    "case6.json",
    "case8.json",
    "case15.json",
    "case16.json",
    "case18.json",
    "case22.json",
    "case23.json",
    "case24.json",
    "case25.json",
    "case26.json",
]


def for_rabbitmq_3(name: str, *, vhost: str | None = None) -> LoadedTopology:
    """Load a copied file with a RabbitMQ 3 target, as the suite permits deprecated features."""
    path = DATA / name
    text = path.read_text(encoding="utf-8")
    brace = text.index("{") + 1
    text = text[:brace] + ' "x-burrowmq": {"rabbitmq": "3.13"},' + text[brace:]
    return parse_topology(text, file=str(path), vhost=vhost)


def refused(name: str, *, vhost: str | None = None) -> list[str]:
    """The errors (as FILE:LINE: path: message, without the folder) of a refused file."""
    with pytest.raises(TopologyError) as caught:
        read_topology(DATA / name, vhost=vhost)
    return [str(e).removeprefix(f"{DATA}/") for e in caught.value.errors]


class TestImported:
    """Files RabbitMQ imports load, with the entities RabbitMQ would create."""

    @pytest.mark.parametrize("name", NO_TOPOLOGY)
    def test_no_topology(self, name: str) -> None:
        """Definitions without topology load as an empty topology, without warnings."""
        loaded = read_topology(DATA / name)
        topology = loaded.topology
        assert (topology.exchanges, topology.queues, topology.bindings, topology.policies) == (
            [],
            [],
            [],
            [],
        )
        assert loaded.warnings == ()

    def test_case11_amq_names_are_skipped(self) -> None:
        """amq.* queues and exchanges are skipped with a warning each, as RabbitMQ logs."""
        loaded = read_topology(DATA / "case11.json")
        assert loaded.topology.queues == [] and loaded.topology.exchanges == []
        assert [str(w).removeprefix(f"{DATA}/") for w in loaded.warnings] == [
            "case11.json:6: queues[0].name: queue 'amq.queuebar' skipped, never declared: "
            "names starting with 'amq.' belong to the broker",
            "case11.json:15: exchanges[0].name: exchange 'amq.foobar' skipped, never declared: "
            "names starting with 'amq.' belong to the broker",
        ]

    def test_case13_quorum_queue(self) -> None:
        """The suite asserts a quorum queue with x-max-length 991 and x-queue-type quorum."""
        loaded = read_topology(DATA / "case13.json")
        assert loaded.topology.queues == [
            Queue(
                name="definitions.import.case13.qq.1",
                type="quorum",
                vhost="/",
                arguments={"x-max-length": 991, "x-queue-type": "quorum"},
            )
        ]
        assert loaded.warnings == ()

    def test_case14_minimal_keys(self) -> None:
        """Entities without arguments or internal get RabbitMQ's defaults."""
        topology = read_topology(DATA / "case14.json").topology
        assert topology.exchanges == [Exchange(name="x_demo", type="fanout", vhost="/")]
        assert topology.queues == [Queue(name="q_demo", vhost="/")]
        assert topology.bindings == [
            Binding(source="x_demo", destination="q_demo", routing_key="#", vhost="/")
        ]

    def test_case7_bindings_from_a_predeclared_exchange(self) -> None:
        """Bindings from amq.topic are kept: the exchange exists in every vhost."""
        loaded = read_topology(DATA / "case7.json")
        assert len(loaded.topology.queues) == 29
        assert {b.source for b in loaded.topology.bindings} == {"amq.topic"}
        assert [b.routing_key for b in loaded.topology.bindings] == [
            "durable",
            "durable-separate",
            "durable-separate",
            "durable-shared",
        ]
        assert loaded.warnings == ()

    def test_case4_needs_a_rabbitmq_3_target(self) -> None:
        """A transient non-exclusive queue: refused for RabbitMQ 4, a warning for RabbitMQ 3."""
        (error,) = refused("case4.json")
        assert error.startswith("case4.json:30: queues[0].durable: a queue that is not exclusive")
        loaded = for_rabbitmq_3("case4.json")
        assert loaded.topology.queues == [Queue(name="abc.def", durable=False, vhost="/")]
        assert [p.name for p in loaded.topology.policies] == ["abc"]
        assert [(w.line, w.path) for w in loaded.warnings] == [
            (18, "policies[0].definition.queue-master-locator"),
            (30, "queues[0].durable"),
        ]

    @pytest.mark.parametrize(
        ("name", "vhost", "exchanges", "queues", "bindings"),
        [
            ("case9/case9a.json", "/", 19, 17, 2),
            ("case9/case9a.json", "bunny_testbed", 0, 1, 0),
            ("case9/case9b.json", "/", 19, 17, 2),
            ("case9/case9b.json", "bunny_testbed", 1, 14, 0),
            ("case9/case9b.json", "vhost3", 0, 1, 0),
        ],
    )
    def test_case9_each_vhost(
        self, name: str, vhost: str, exchanges: int, queues: int, bindings: int
    ) -> None:
        """The suite imports the case9 folder; each of its vhosts loads on its own."""
        topology = for_rabbitmq_3(name, vhost=vhost).topology
        counts = (len(topology.exchanges), len(topology.queues), len(topology.bindings))
        assert counts == (exchanges, queues, bindings)
        assert all(e.vhost == vhost for e in [*topology.exchanges, *topology.queues])

    def test_case9a_warnings(self) -> None:
        """The server-named queue is skipped; the missing alternate exchange is a warning."""
        loaded = for_rabbitmq_3("case9/case9a.json", vhost="/")
        assert "amq.gen-7EZF7WjGIQFDoXexVF-e8w" not in {q.name for q in loaded.topology.queues}
        others = [w for w in loaded.warnings if not w.path.endswith(".durable")]
        assert [(w.line, w.path) for w in others] == [
            (192, "queues[11].name"),
            (281, "exchanges[2].arguments.alternate-exchange"),
        ]
        assert "alternate exchange 'langohr.extensions.altexchanges.fanout1' is not declared" in (
            others[1].message
        )
        transient = [w for w in loaded.warnings if w.path.endswith(".durable")]
        assert len(transient) == 14  # every other non-durable queue of '/'

    def test_case9_needs_a_vhost(self) -> None:
        """Several vhosts in one file: an error naming them, until one is chosen."""
        (error,) = refused("case9/case9b.json")
        assert "names 3 ('/', 'bunny_testbed', 'vhost3'); choose one with vhost=" in error

    def test_case1_and_case3_for_rabbitmq_3(self) -> None:
        """The ha-* files RabbitMQ 3 imported load for a RabbitMQ 3 target, with warnings."""
        case1 = for_rabbitmq_3("case1.json")
        assert [p.name for p in case1.topology.policies] == ["nd-ns", "nd-s", "d-ns", "d-s"]
        assert [e.name for e in case1.topology.exchanges] == ["project.topic.default"]
        case3 = for_rabbitmq_3("case3.json")
        assert [b.source for b in case3.topology.bindings] == ["amq.direct"] * 3
        assert any(w.path == "queues[4].durable" for w in case3.warnings)


class TestRefused:
    """Files RabbitMQ refuses are refused, with the reason at its line."""

    def test_case1_ha_policies_on_rabbitmq_4(self) -> None:
        """import_invalid_file_case_in_khepri: RabbitMQ 4 refuses ha-* policy keys."""
        errors = refused("case1.json")
        assert len(errors) == 8  # four ha-* keys in each of two policies
        assert errors[0].startswith(
            "case1.json:54: policies[2].definition.ha-mode: classic queue mirroring was "
            "removed in RabbitMQ 4.0"
        )
        assert all("RabbitMQ 4 refuses it" in e for e in errors)

    def test_case3_ha_policy_and_transient_queue_on_rabbitmq_4(self) -> None:
        """import_invalid_file_case_in_khepri: one line, every problem of it."""
        errors = refused("case3.json")
        assert [e.split(": ")[1] for e in errors] == [
            "queues[4].durable",
            "policies[0].definition.ha-mode",
            "policies[0].definition.ha-params",
            "policies[0].definition.ha-sync-mode",
        ]

    def test_case10_duplicate_queue(self) -> None:
        """The case10 folder fails: case10a declares one queue twice, differently."""
        assert for_rabbitmq_3("case10/case10b.json", vhost="bunny_testbed").topology.queues
        with pytest.raises(TopologyError) as caught:
            for_rabbitmq_3("case10/case10a.json")
        (error,) = caught.value.errors
        assert (error.line, error.path) == (58, "queues[1].name")
        assert "is declared twice (first on line 51)" in error.message

    def test_case12_exchange_type(self) -> None:
        """failing_case12: an exchange type no node has."""
        assert refused("failing_case12.json") == [
            "failing_case12.json:17: exchanges[0].type: must be one of direct, fanout, topic, "
            "headers (or a plugin's x-... type), got 'definitly not direct'"
        ]

    def test_case17_policy_without_name(self) -> None:
        """failing_case17: a policy needs a name."""
        assert refused("failing_case17.json") == [
            "failing_case17.json:8: policies[0].name: is required"
        ]

    def test_case20_malformed_json(self) -> None:
        """failing_case20: reported as JSON, with line and column."""
        with pytest.raises(TopologyError) as caught:
            read_topology(DATA / "failing_case20.json")
        (error,) = caught.value.errors
        assert isinstance(error, JsonProblem)
        assert str(error) == (
            f"{DATA}/failing_case20.json:6:29: not valid JSON: Expecting ',' delimiter"
        )


class TestOutOfScope:
    """Where burrowmq deliberately differs from RabbitMQ's import, and why."""

    def test_case13a_is_checked_alone(self) -> None:
        """The suite imports case13a over case13's queue, which makes it a no-op.

        RabbitMQ skips a queue that already exists without looking at it; burrowmq
        checks a file on its own, never against a broker, and a fresh RabbitMQ refuses
        this stream too (rabbit_stream_queue:declare: no auto-delete, durable only, and
        "invalid arg 'x-max-length'": a stream caps by bytes and age, not by count).
        """
        assert [e.split(": ")[1] for e in refused("case13a.json")] == [
            "queues[0].arguments.x-max-length",
            "queues[0].auto_delete",
            "queues[0].durable",
        ]

    def test_case19_users_are_not_topology(self) -> None:
        """RabbitMQ refuses a user limit that is not a number; burrowmq ignores users."""
        assert read_topology(DATA / "failing_case19.json").topology.queues == []

    def test_case21_entities_without_vhost(self) -> None:
        """RabbitMQ refuses entities without a vhost in a whole-broker import only.

        Its per-vhost import (POST /api/definitions/<vhost>) takes them, and a burrowmq
        topology is always applied to one vhost (the broker URL's), so they load.
        """
        topology = read_topology(DATA / "failing_case21.json").topology
        assert [(q.name, q.queue_type, q.vhost) for q in topology.queues] == [
            ("qq.1", "quorum", None),
            ("cq.1", "classic", None),
            ("sq.1", "stream", None),
        ]


class TestEveryFile:
    """No copied file is left without a test of its outcome."""

    def test_all_files_covered(self) -> None:
        """Every JSON file in the folder is named in this module."""
        source = Path(__file__).read_text(encoding="utf-8")
        names = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*.json"))
        assert len(names) == 29
        missing = [n for n in names if f'"{n}"' not in source]
        assert missing == []
