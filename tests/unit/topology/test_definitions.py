"""Tests for the definitions import rules: skipped names, late references, vhosts, targets, JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from burrowmq import Binding, Exchange, Queue, Topology, TopologyError
from burrowmq.topology.definitions import rabbitmq_version, unimportable
from burrowmq.topology.document import JsonProblem, strip_bom
from burrowmq.topology.loader import load_topology, parse_topology, read_topology
from burrowmq.topology.validation import Settings

pytestmark = pytest.mark.unit


def lines(text: str) -> str:
    """The text, dedented."""
    return textwrap.dedent(text)


class TestSkipped:
    """amq.* names and names AMQP cannot declare are skipped with a warning, never declared."""

    def test_amq_entities_and_their_bindings(self) -> None:
        """Server-named queues, predeclared and reserved exchanges, and bindings to them."""
        text = lines(
            """\
            exchanges:
              - {name: orders, type: topic}
              - {name: amq.direct, type: direct}
              - {name: amq.custom, type: fanout}
            queues:
              - {name: audit}
              - {name: amq.gen-7EZF7WjGIQFDoXexVF-e8w, durable: false, auto_delete: true}
            bindings:
              - {source: amq.custom, destination: audit}
              - {source: orders, destination: amq.gen-7EZF7WjGIQFDoXexVF-e8w}
              - {source: amq.direct, destination: audit, routing_key: audit}
              - {source: orders, destination: amq.topic, destination_type: exchange}
            """
        )
        loaded = parse_topology(text, file="defs.yaml")
        assert loaded.topology.exchanges == [Exchange(name="orders", type="topic")]
        assert loaded.topology.queues == [Queue(name="audit")]
        assert loaded.topology.bindings == [
            Binding(source="amq.direct", destination="audit", routing_key="audit"),
            Binding(source="orders", destination="amq.topic", destination_type="exchange"),
        ]
        assert [(w.line, w.path) for w in loaded.warnings] == [
            (3, "exchanges[1].name"),
            (4, "exchanges[2].name"),
            (7, "queues[1].name"),
            (9, "bindings[0].source"),
            (10, "bindings[1].destination"),
        ]
        messages = [w.message for w in loaded.warnings]
        assert messages[0] == (
            "exchange 'amq.direct' skipped, never declared: exchange 'amq.direct' is "
            "predeclared in every virtual host"
        )
        assert messages[2] == (
            "queue 'amq.gen-7EZF7WjGIQFDoXexVF-e8w' skipped, never declared: names starting "
            "with 'amq.' belong to the broker"
        )
        assert messages[3].startswith("binding skipped: its source exchange 'amq.custom'")
        assert str(loaded.warnings[4]).startswith(
            "defs.yaml:10: bindings[1].destination: binding skipped: its destination queue "
            "'amq.gen-7EZF7WjGIQFDoXexVF-e8w' is never declared"
        )

    def test_names_amqp_cannot_declare(self) -> None:
        """Names with characters or lengths AMQP refuses are skipped, their bindings too."""
        long_name = "q" * 200
        text = json.dumps(
            {
                "exchanges": [
                    {"name": "prix-€", "type": "fanout"},
                    {"name": "e", "type": "direct"},
                ],
                "queues": [{"name": long_name}, {"name": "ok"}],
                "bindings": [
                    {"source": "e", "destination": long_name},
                    {"source": "prix-€", "destination": "ok"},
                    {"source": "e", "destination": "ok"},
                ],
            },
            indent=1,
        )
        loaded = parse_topology(text, file="defs.json")
        assert [e.name for e in loaded.topology.exchanges] == ["e"]
        assert [q.name for q in loaded.topology.queues] == ["ok"]
        assert [(b.source, b.destination) for b in loaded.topology.bindings] == [("e", "ok")]
        paths = [w.path for w in loaded.warnings]
        assert paths == [
            "exchanges[0].name",
            "queues[0].name",
            "bindings[0].destination",
            "bindings[1].source",
        ]
        assert "holds '€'" in loaded.warnings[0].message
        assert "longer than 127 characters, so AMQP cannot declare it" in loaded.warnings[1].message

    def test_default_exchange(self) -> None:
        """An exchange named "" is skipped; binding from it stays an error, as in RabbitMQ."""
        loaded = parse_topology("exchanges:\n  - {name: '', type: direct}\n")
        assert loaded.topology.exchanges == []
        (warning,) = loaded.warnings
        assert (warning.line, warning.path) == (2, "exchanges[0].name")
        assert "the default exchange exists in every virtual host" in warning.message
        text = "queues: [{name: q}]\nbindings:\n  - {source: '', destination: q}\n"
        with pytest.raises(TopologyError) as caught:
            parse_topology(text)
        assert [e.path for e in caught.value.errors] == ["bindings[0].source"]

    def test_skipped_entities_are_not_checked_further(self) -> None:
        """Like RabbitMQ, a skipped queue's arguments and durability are not looked at."""
        text = "queues:\n  - name: amq.gen-x\n    durable: false\n    arguments: {x-expires: 0}\n"
        loaded = parse_topology(text)
        assert loaded.topology.queues == []
        assert [w.path for w in loaded.warnings] == ["queues[0].name"]

    @pytest.mark.parametrize(
        ("kind", "name", "skipped"),
        [
            ("exchange", "", True),
            ("exchange", "amq.topic", True),
            ("exchange", "amq.rabbitmq.event", True),
            ("queue", "amq.gen-abc", True),
            ("queue", "tab\there", True),
            ("queue", "orders.eu:1/#+@,", False),
            ("exchange", "amq", False),
        ],
    )
    def test_unimportable(self, kind: str, name: str, skipped: bool) -> None:
        """unimportable() names a reason exactly for the names burrowmq never declares."""
        assert (unimportable(kind, name) is not None) is skipped


class TestLateReferences:
    """Alternate and dead-letter exchanges missing from the file are warnings."""

    def test_arguments_and_policies(self) -> None:
        """Each of the four places gives a warning with its line; the file loads."""
        text = lines(
            """\
            exchanges:
              - name: e
                type: direct
                arguments: {alternate-exchange: e.unrouted}
            queues:
              - name: q
                arguments:
                  x-dead-letter-exchange: q.dlx
            policies:
              - name: p
                pattern: '^q$'
                definition:
                  dead-letter-exchange: p.dlx
                  alternate-exchange: p.ae
            """
        )
        loaded = parse_topology(text, file="t.yaml")
        assert [(w.line, w.path) for w in loaded.warnings] == [
            (4, "exchanges[0].arguments.alternate-exchange"),
            (8, "queues[0].arguments.x-dead-letter-exchange"),
            (13, "policies[0].definition.dead-letter-exchange"),
            (14, "policies[0].definition.alternate-exchange"),
        ]
        assert loaded.warnings[1].message == (
            "dead-letter exchange 'q.dlx' is not declared: RabbitMQ looks it up only when a "
            "message is dead-lettered, and drops the message if it does not exist then"
        )
        assert "only when a message is unroutable" in loaded.warnings[0].message
        queue = loaded.topology.queue("q")
        assert queue is not None
        assert queue.arguments["x-dead-letter-exchange"] == "q.dlx"

    def test_declared_known_and_predeclared_are_silent(self) -> None:
        """Exchanges of the file, of the App and of every vhost satisfy the references."""
        text = lines(
            """\
            exchanges:
              - {name: dlx, type: fanout}
              - {name: e, type: direct, arguments: {alternate-exchange: amq.fanout}}
            queues:
              - {name: a, arguments: {x-dead-letter-exchange: dlx}}
              - {name: b, arguments: {x-dead-letter-exchange: app.dlx}}
              - {name: c, arguments: {x-dead-letter-exchange: ''}}
            """
        )
        known = Topology(exchanges=[Exchange(name="app.dlx", type="fanout")])
        assert parse_topology(text, known=known).warnings == ()

    def test_bindings_to_missing_entities_stay_errors(self) -> None:
        """RabbitMQ's import fails on a binding whose ends do not exist; so does the loader."""
        text = "exchanges: [{name: e, type: fanout}]\nbindings:\n  - {source: e, destination: q}\n"
        with pytest.raises(TopologyError) as caught:
            parse_topology(text)
        (error,) = caught.value.errors
        assert (error.line, error.path, error.message) == (
            3,
            "bindings[0].destination",
            "queue 'q' is not declared",
        )


MULTI = lines(
    """\
    exchanges:
      - {name: orders, type: topic, vhost: /}
      - {name: orders, type: fanout, vhost: staging}
      - {name: shared, type: direct}
    queues:
      - {name: audit, vhost: /}
      - {name: audit, vhost: staging, arguments: {x-queue-type: quorum}}
    bindings:
      - {source: orders, destination: audit, routing_key: '#', vhost: /}
      - {source: orders, destination: audit, vhost: staging}
      - {source: shared, destination: audit}
    """
)


class TestVhosts:
    """A file naming several virtual hosts loads one, chosen with vhost=."""

    def test_ambiguous_without_vhost(self) -> None:
        """Without vhost=, one error names the virtual hosts found."""
        with pytest.raises(TopologyError) as caught:
            parse_topology(MULTI, file="all.yaml")
        (error,) = caught.value.errors
        assert (error.line, error.path) == (3, "exchanges[1].vhost")
        assert error.message == (
            "'staging' differs from '/': a topology file describes one virtual host, and this "
            "one names 2 ('/', 'staging'); choose one with vhost= (burrowmq topology ... "
            "--vhost NAME)"
        )

    def test_choose_each(self) -> None:
        """Each vhost gets its own entities and those naming none; names may repeat."""
        root = parse_topology(MULTI, vhost="/").topology
        staging = parse_topology(MULTI, vhost="staging").topology
        assert [(e.name, e.type) for e in root.exchanges] == [
            ("orders", "topic"),
            ("shared", "direct"),
        ]
        assert [(e.name, e.type) for e in staging.exchanges] == [
            ("orders", "fanout"),
            ("shared", "direct"),
        ]
        assert staging.queues == [
            Queue(name="audit", vhost="staging", arguments={"x-queue-type": "quorum"})
        ]
        assert [b.routing_key for b in root.bindings] == ["#", ""]
        assert [b.source for b in staging.bindings] == ["orders", "shared"]

    def test_unknown_vhost(self) -> None:
        """A vhost the file does not name is an error listing those it does."""
        with pytest.raises(TopologyError) as caught:
            parse_topology(MULTI, vhost="prod")
        (error,) = caught.value.errors
        assert error.message == "no entity is in virtual host 'prod'; the file names '/', 'staging'"

    def test_references_stay_inside_the_vhost(self) -> None:
        """A binding in one vhost cannot reach a queue of another."""
        text = (
            "exchanges: [{name: e, type: fanout, vhost: a}]\n"
            "queues: [{name: q, vhost: b}]\n"
            "bindings: [{source: e, destination: q, vhost: a}]\n"
        )
        with pytest.raises(TopologyError) as caught:
            parse_topology(text, vhost="a")
        assert [e.message for e in caught.value.errors] == ["queue 'q' is not declared"]

    def test_one_vhost_loads_as_before(self) -> None:
        """A file of one vhost loads without vhost=; another vhost= only warns."""
        text = "queues: [{name: q, vhost: /}]\n"
        assert parse_topology(text).warnings == ()
        assert parse_topology(text, vhost="/").warnings == ()
        loaded = parse_topology(text, vhost="staging")
        assert [q.name for q in loaded.topology.queues] == ["q"]
        (warning,) = loaded.warnings
        assert warning.path == "queues[0].vhost"
        assert "in virtual host '/', not 'staging': all of them are loaded" in warning.message

    def test_file_functions_pass_vhost(self, tmp_path: Path) -> None:
        """read_topology and load_topology take vhost= too."""
        path = tmp_path / "all.yaml"
        path.write_text(MULTI, encoding="utf-8")
        assert len(read_topology(path, vhost="staging").topology.queues) == 1
        assert load_topology(path, vhost="/").exchanges[0].type == "topic"


class TestTargetVersion:
    """x-burrowmq.rabbitmq decides what the target broker refuses."""

    TRANSIENT = "queues:\n  - name: q\n    durable: false\n"

    def test_transient_queue_is_an_error_on_4(self) -> None:
        """The default target, RabbitMQ 4, refuses non-durable non-exclusive queues."""
        for head in ("", "x-burrowmq: {rabbitmq: '4.1'}\n"):
            with pytest.raises(TopologyError) as caught:
                parse_topology(self.TRANSIENT + head)
            assert "RabbitMQ 4 refuses non-durable non-exclusive queues" in str(caught.value)

    def test_transient_queue_is_a_warning_on_3(self) -> None:
        """For RabbitMQ 3.10, the queue loads, non-durable, with a warning at its line."""
        loaded = parse_topology(self.TRANSIENT + "x-burrowmq: {rabbitmq: '3.10'}\n")
        assert loaded.topology.queues == [Queue(name="q", durable=False)]
        (warning,) = loaded.warnings
        assert (warning.line, warning.path) == (3, "queues[0].durable")
        assert "RabbitMQ 4 refuses it" in warning.message
        assert loaded.settings.rabbitmq == "3.10"
        assert loaded.settings.rabbitmq_major == 3

    def test_quorum_and_stream_queues_must_be_durable_everywhere(self) -> None:
        """RabbitMQ 3 refuses non-durable quorum queues and streams too."""
        text = (
            "x-burrowmq: {rabbitmq: '3.13'}\nqueues:\n"
            "  - {name: q, durable: false, arguments: {x-queue-type: quorum}}\n"
        )
        with pytest.raises(TopologyError) as caught:
            parse_topology(text)
        assert [e.message for e in caught.value.errors] == ["quorum queues must be durable"]

    def test_ha_policy(self) -> None:
        """ha-* keys are errors for RabbitMQ 4 and warnings for RabbitMQ 3."""
        policy = "policies:\n  - {name: p, pattern: '.*', definition: {ha-mode: all}}\n"
        with pytest.raises(TopologyError) as caught:
            parse_topology(policy)
        assert "RabbitMQ 4 refuses it" in caught.value.errors[0].message
        loaded = parse_topology(policy + "x-burrowmq: {rabbitmq: '3.13'}\n")
        assert "removed in RabbitMQ 4.0" in loaded.warnings[0].message

    @pytest.mark.parametrize(
        ("value", "version"),
        [("3.10", (3, 10)), ("3.13", (3, 13)), ("4.0", (4, 0)), ("4.1", (4, 1)), ("4.0.5", (4, 0))],
    )
    def test_versions(self, value: str, version: tuple[int, int]) -> None:
        """Version strings of 3.10 to 4.x are understood."""
        assert rabbitmq_version(value) == version
        assert Settings(rabbitmq=value).rabbitmq_major == version[0]

    @pytest.mark.parametrize("value", ["3.9", "5.0", "4", "latest", "", 3.1, 4, True, None])
    def test_bad_versions(self, value: object) -> None:
        """Anything else is refused with the key path and line."""
        text = f"x-burrowmq:\n  rabbitmq: {json.dumps(value)}\n"
        with pytest.raises(TopologyError) as caught:
            parse_topology(text)
        (error,) = caught.value.errors
        assert (error.line, error.path) == (2, "x-burrowmq.rabbitmq")
        assert error.message.startswith('must be a RabbitMQ version from "3.10" to "4.x"')

    def test_default_is_4(self) -> None:
        """No rabbitmq key means RabbitMQ 4."""
        assert Settings().rabbitmq_major == 4


class TestJson:
    """JSON files are reported as JSON, with line and column."""

    BROKEN = '{\n  "queues": [\n    {"name": "q"}\n    {"name": "r"}\n  ]\n}\n'

    def test_malformed_json_file(self, tmp_path: Path) -> None:
        """A .json file names the line and column of the JSON error."""
        path = tmp_path / "defs.json"
        path.write_text(self.BROKEN, encoding="utf-8")
        with pytest.raises(TopologyError) as caught:
            read_topology(path)
        (error,) = caught.value.errors
        assert isinstance(error, JsonProblem)
        assert (error.line, error.column, error.path) == (4, 5, "")
        assert str(error) == f"{path}:4:5: not valid JSON: Expecting ',' delimiter"
        assert (
            str(caught.value)
            == f"{path}: 1 problem\n{path}:4:5: not valid JSON: Expecting ',' delimiter"
        )

    def test_text_starting_with_a_brace(self) -> None:
        """Text starting with { is JSON unless the file is named .yaml or .yml."""
        with pytest.raises(TopologyError) as caught:
            parse_topology("\n  " + self.BROKEN, file="defs.txt")
        assert caught.value.errors[0].message == "not valid JSON: Expecting ',' delimiter"
        flow = "{queues: [{name: q}]}\n"
        assert [q.name for q in parse_topology(flow, file="t.yaml").topology.queues] == ["q"]
        with pytest.raises(TopologyError, match="not valid JSON"):
            parse_topology(flow)

    def test_yaml_errors_stay_yaml(self) -> None:
        """A YAML file is still reported as YAML."""
        with pytest.raises(TopologyError) as caught:
            parse_topology("queues: [\n", file="t.yaml")
        assert caught.value.errors[0].message.startswith("not valid YAML")

    def test_json_values_win(self) -> None:
        """A number YAML 1.1 reads otherwise (1e5) keeps its JSON value."""
        text = '{"queues": [{"name": "q", "arguments": {"x-message-ttl": 1e5}}]}'
        with pytest.raises(TopologyError) as caught:
            parse_topology(text, file="defs.json")
        assert caught.value.errors[0].message == "must be an integer, got 100000.0"

    def test_empty_json_file(self, tmp_path: Path) -> None:
        """An empty definitions file is no definitions, as RabbitMQ imports it."""
        path = tmp_path / "empty.json"
        path.write_text("", encoding="utf-8")
        assert load_topology(path).queues == []

    @pytest.mark.parametrize(
        "bom", [b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\xff\xfe", b"\x00\x00\xfe\xff"]
    )
    def test_byte_order_marks(self, tmp_path: Path, bom: bytes) -> None:
        """Any byte order mark before the text is dropped, as RabbitMQ's strip_bom does."""
        path = tmp_path / "defs.json"
        path.write_bytes(bom + b'{"queues": [{"name": "q", "durable": true}]}')
        assert [q.name for q in load_topology(path).queues] == ["q"]
        assert strip_bom(bom + b"{") == b"{"
