"""Tests for the topology loader: every problem with file, line and key path."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from burrowmq import Exchange, Queue, Topology, TopologyError
from burrowmq.topology.loader import load_topology, parse_topology, read_topology

pytestmark = pytest.mark.unit

HEAD = """\
exchanges:
  - {name: orders, type: topic}
  - {name: docs, type: headers}
queues:
  - {name: audit, arguments: {x-queue-type: quorum}}
"""
"""Five lines every case may build on: lines 2-3 exchanges, line 5 a queue."""

# (case id, YAML text, line, key path, part of the message)
BAD_FILES = [
    (
        "stream-dead-letter",
        "queues:\n  - name: s\n    arguments:\n      x-queue-type: stream\n"
        "      x-dead-letter-exchange: dlx\n",
        5,
        "queues[0].arguments.x-dead-letter-exchange",
        "refuses this argument on a stream",
    ),
    (
        "stream-max-age-bad",
        "queues:\n  - name: s\n    type: stream\n    arguments: {x-max-age: 7days}\n",
        4,
        "queues[0].arguments.x-max-age",
        "must be a duration",
    ),
    (
        "max-length-not-int",
        "queues:\n  - name: q\n    arguments:\n      x-max-length: '10'\n",
        4,
        "queues[0].arguments.x-max-length",
        "must be an integer",
    ),
    (
        "ttl-negative",
        "queues:\n  - name: q\n    arguments: {x-message-ttl: -5}\n",
        3,
        "queues[0].arguments.x-message-ttl",
        "must be non-negative",
    ),
    (
        "expires-zero",
        "queues:\n  - name: q\n    arguments:\n      x-expires: 0\n",
        4,
        "queues[0].arguments.x-expires",
        "must be >= 1",
    ),
    (
        "priority-too-high",
        "queues:\n  - name: q\n    arguments:\n      x-max-priority: 300\n",
        4,
        "queues[0].arguments.x-max-priority",
        "at most 255",
    ),
    (
        "delivery-limit-float",
        "queues:\n  - name: q\n    arguments:\n      x-delivery-limit: 2.5\n",
        4,
        "queues[0].arguments.x-delivery-limit",
        "must be an integer",
    ),
    (
        "length-bytes-bool",
        "queues:\n  - name: q\n    arguments:\n      x-max-length-bytes: true\n",
        4,
        "queues[0].arguments.x-max-length-bytes",
        "must be an integer",
    ),
    (
        "queue-type-unknown",
        "queues:\n  - name: q\n    arguments:\n      x-queue-type: lazy\n",
        4,
        "queues[0].arguments.x-queue-type",
        "must be one of classic, quorum, stream",
    ),
    (
        "overflow-unknown",
        "queues:\n  - name: q\n    arguments:\n      x-overflow: drop-tail\n",
        4,
        "queues[0].arguments.x-overflow",
        "drop-head, reject-publish, reject-publish-dlx",
    ),
    (
        "dlx-not-string",
        "queues:\n  - name: q\n    arguments:\n      x-dead-letter-exchange: 5\n",
        4,
        "queues[0].arguments.x-dead-letter-exchange",
        "must be a string",
    ),
    (
        "single-active-consumer-text",
        "queues:\n  - name: q\n    arguments:\n      x-single-active-consumer: 'yes'\n",
        4,
        "queues[0].arguments.x-single-active-consumer",
        "must be true or false",
    ),
    (
        "exchange-type-invalid",
        "exchanges:\n  - name: e\n    type: topics\n",
        3,
        "exchanges[0].type",
        "must be one of direct, fanout, topic, headers",
    ),
    (
        "exchange-unknown-key",
        "exchanges:\n  - name: e\n    type: direct\n    durabel: true\n",
        4,
        "exchanges[0].durabel",
        "unknown key",
    ),
    (
        "queue-unknown-key",
        HEAD + "  - name: q\n    max_length: 3\n",
        7,
        "queues[1].max_length",
        "unknown key",
    ),
    (
        "binding-undeclared-exchange",
        HEAD + "bindings:\n  - source: order\n    destination: audit\n",
        7,
        "bindings[0].source",
        "exchange 'order' is not declared",
    ),
    (
        "binding-undeclared-queue",
        HEAD + "bindings:\n  - source: orders\n    destination: audits\n    routing_key: '#'\n",
        8,
        "bindings[0].destination",
        "queue 'audits' is not declared",
    ),
    (
        "binding-undeclared-exchange-destination",
        HEAD + "bindings:\n  - {source: orders, destination: audit, destination_type: exchange}\n",
        7,
        "bindings[0].destination",
        "exchange 'audit' is not declared",
    ),
    (
        "binding-destination-type",
        HEAD + "bindings:\n  - source: orders\n    destination: audit\n    destination_type: q\n",
        9,
        "bindings[0].destination_type",
        "must be queue or exchange",
    ),
    (
        "headers-binding-without-x-match",
        HEAD + "bindings:\n  - source: docs\n    destination: audit\n    arguments:\n"
        "      format: pdf\n",
        9,
        "bindings[0].arguments",
        "needs x-match",
    ),
    (
        "headers-binding-bad-x-match",
        HEAD + "bindings:\n  - source: docs\n    destination: audit\n    arguments:\n"
        "      x-match: some\n",
        10,
        "bindings[0].arguments.x-match",
        "must be one of all, any, all-with-x, any-with-x",
    ),
    (
        "repeated-top-level-section",
        HEAD + "  - name: q\nexchanges:\n  - {name: a, type: direct}\n",
        7,
        "exchanges",
        "key given twice",
    ),
    (
        "duplicate-exchange-name",
        "exchanges:\n  - {name: a, type: direct}\n  - {name: b, type: fanout}\n"
        "  - name: a\n    type: topic\n",
        4,
        "exchanges[2].name",
        "exchange 'a' is declared twice (first on line 2)",
    ),
    (
        "duplicate-queue-name",
        HEAD + "  - name: audit\n",
        6,
        "queues[1].name",
        "queue 'audit' is declared twice (first on line 5)",
    ),
    (
        "duplicate-policy-name",
        "policies:\n  - {name: p, pattern: '.*', definition: {max-length: 1}}\n"
        "  - {name: p, pattern: '^a', definition: {max-length: 2}}\n",
        3,
        "policies[1].name",
        "policy 'p' is declared twice",
    ),
    (
        "non-durable-queue",
        "queues:\n  - name: q\n    durable: false\n",
        3,
        "queues[0].durable",
        "RabbitMQ 4 refuses non-durable non-exclusive queues",
    ),
    (
        "exclusive-queue",
        "queues:\n  - name: q\n    exclusive: true\n    durable: false\n",
        3,
        "queues[0].exclusive",
        "exclusive queues belong to one connection",
    ),
    (
        "quorum-auto-delete",
        "queues:\n  - name: q\n    auto_delete: true\n    arguments: {x-queue-type: quorum}\n",
        3,
        "queues[0].auto_delete",
        "quorum queues cannot be auto-delete",
    ),
    (
        "unknown-top-level-key",
        HEAD + "qeues: []\n",
        6,
        "qeues",
        "unknown key",
    ),
    (
        "section-not-a-list",
        "queues:\n  name: q\n",
        1,
        "queues",
        "must be a list, got a mapping",
    ),
    (
        "item-not-a-mapping",
        "queues:\n  - q1\n",
        2,
        "queues[0]",
        "must be a mapping, got 'q1'",
    ),
    (
        "missing-name",
        "queues:\n  - durable: true\n",
        2,
        "queues[0].name",
        "is required",
    ),
    (
        "empty-name",
        "queues:\n  - name: ''\n    durable: true\n",
        2,
        "queues[0].name",
        "must not be empty",
    ),
    (
        "policy-apply-to",
        "policies:\n  - name: p\n    pattern: '.*'\n    apply-to: topics\n"
        "    definition: {max-length: 1}\n",
        4,
        "policies[0].apply-to",
        "must be one of all, exchanges, queues",
    ),
    (
        "policy-empty-definition",
        "policies:\n  - name: p\n    pattern: '.*'\n    definition: {}\n",
        4,
        "policies[0].definition",
        "must hold at least one key",
    ),
    (
        "policy-ttl-text",
        "policies:\n  - name: p\n    pattern: '.*'\n    definition:\n      message-ttl: 1h\n",
        5,
        "policies[0].definition.message-ttl",
        "must be an integer",
    ),
    (
        "extension-unknown-key",
        "x-burrowmq:\n  default_queue: quorum\n",
        2,
        "x-burrowmq.default_queue",
        "unknown key",
    ),
    (
        "extension-queue-type",
        "x-burrowmq:\n  version: 1\n  default_queue_type: lazy\n",
        3,
        "x-burrowmq.default_queue_type",
        "must be one of classic, quorum, stream",
    ),
    (
        "yaml-syntax",  # named where the bracket opened, not where the parser gave up
        "queues:\n  - name: q\n    arguments: {x-max-length: 1\n",
        3,
        "",
        "not valid YAML: the '{' opened at column 16 is not closed",
    ),
    (
        "yaml-unclosed-mid-file",
        "queues:\n  - {name: q, durable: true\nexchanges:\n  - {name: e, type: direct}\n",
        2,
        "",
        "the '{' opened at column 5 is not closed (line 3: expected ',' or '}'",
    ),
    (
        "argument-typo",
        "queues:\n  - name: q\n    arguments: {x-max-lenght: 10}\n",
        3,
        "queues[0].arguments.x-max-lenght",
        "not a queue argument RabbitMQ knows: did you mean x-max-length?",
    ),
    (
        "repeated-key",
        "queues:\n  - name: q\n    durable: true\n    name: r\n",
        4,
        "queues[0].name",
        "key given twice",
    ),
    (
        "type-contradicts-argument",
        "queues:\n  - name: q\n    type: classic\n    arguments: {x-queue-type: quorum}\n",
        3,
        "queues[0].type",
        "contradicts arguments.x-queue-type",
    ),
    (
        "two-vhosts",
        "exchanges:\n  - {name: a, type: direct, vhost: /}\n"
        "  - {name: b, type: direct, vhost: other}\n",
        3,
        "exchanges[1].vhost",
        "a topology file describes one virtual host",
    ),
    (
        "bind-from-default-exchange",
        HEAD + "bindings:\n  - {source: '', destination: audit, routing_key: audit}\n",
        7,
        "bindings[0].source",
        "the default exchange cannot be bound from",
    ),
    (
        "durable-as-text",
        "exchanges:\n  - name: e\n    durable: 'yes'\n",
        3,
        "exchanges[0].durable",
        "must be true or false",
    ),
    (
        "top-level-list",
        "- name: q\n",
        1,
        "",
        "the top level must be a mapping",
    ),
    (
        "ha-policy-on-rabbitmq-4",
        "policies:\n  - name: ha\n    pattern: '.*'\n    definition:\n      ha-mode: all\n",
        5,
        "policies[0].definition.ha-mode",
        "RabbitMQ 4 refuses it",
    ),
    (
        "rabbitmq-version-as-number",
        "x-burrowmq:\n  rabbitmq: 3.10\n",
        2,
        "x-burrowmq.rabbitmq",
        "YAML reads 3.10 as the number 3.1",
    ),
    (
        "rabbitmq-version-too-old",
        "x-burrowmq:\n  rabbitmq: '3.9'\n",
        2,
        "x-burrowmq.rabbitmq",
        'must be a RabbitMQ version from "3.10" to "4.x"',
    ),
    (
        "routing-key-number",
        HEAD + "bindings:\n  - source: orders\n    destination: audit\n    routing_key: 42\n",
        9,
        "bindings[0].routing_key",
        "must be a string",
    ),
]


Writer = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write a topology file into tmp_path and return its path."""

    def writer(text: str, name: str = "topology.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return writer


class TestBadFiles:
    """Each bad file gives exactly one error with its line and key path."""

    @pytest.mark.parametrize(
        ("text", "line", "path", "message"),
        [pytest.param(*case[1:], id=case[0]) for case in BAD_FILES],
    )
    def test_reports_line_and_path(
        self, write: Writer, text: str, line: int, path: str, message: str
    ) -> None:
        """The error names the file, the exact line and the key path, then the problem."""
        file = write(text)
        with pytest.raises(TopologyError) as caught:
            read_topology(file)
        errors = caught.value.errors
        assert len(errors) == 1, [str(e) for e in errors]
        (error,) = errors
        assert (error.file, error.line, error.path) == (str(file), line, path)
        assert message in error.message
        where = f"{file}:{line}: {path}: " if path else f"{file}:{line}: "
        assert str(error).startswith(where)
        assert str(error) in str(caught.value)

    def test_at_least_25_cases(self) -> None:
        """The table holds at least 25 distinct bad files."""
        assert len({case[0] for case in BAD_FILES}) == len(BAD_FILES) >= 25


class TestCollection:
    """All problems of a file are reported at once, in file order."""

    def test_collects_every_error(self, write: Writer) -> None:
        """Three independent problems give three errors, sorted by line."""
        file = write(
            textwrap.dedent(
                """\
                exchanges:
                  - {name: e, type: nope}
                queues:
                  - name: q
                    arguments: {x-max-length: many}
                bindings:
                  - {source: e2, destination: q}
                """
            )
        )
        with pytest.raises(TopologyError) as caught:
            read_topology(file)
        assert [(e.line, e.path) for e in caught.value.errors] == [
            (2, "exchanges[0].type"),
            (5, "queues[0].arguments.x-max-length"),
            (7, "bindings[0].source"),
        ]
        assert str(caught.value).startswith(f"{file}: 3 problems\n")

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A missing file is one error naming the file, without a line number."""
        path = tmp_path / "missing.yaml"
        with pytest.raises(TopologyError) as caught:
            read_topology(path)
        assert str(caught.value.errors[0]) == f"{path}: no such file"
        assert caught.value.errors[0].line == 0

    def test_json_keeps_line_numbers(self, write: Writer) -> None:
        """A definitions JSON file is checked like YAML, with its own line numbers."""
        data = {"queues": [{"name": "q", "durable": True, "arguments": {"x-max-length": "1"}}]}
        file = write(json.dumps(data, indent="\t"), name="definitions.json")
        with pytest.raises(TopologyError) as caught:
            read_topology(file)
        (error,) = caught.value.errors
        assert (error.line, error.path) == (7, "queues[0].arguments.x-max-length")


class TestWarnings:
    """Legal but dubious settings come back as warnings, not errors."""

    def test_rabbitmq4_hazards(self, write: Writer) -> None:
        """x-queue-mode, ha-* policies (for RabbitMQ 3) and mirroring locators are flagged."""
        file = write(
            textwrap.dedent(
                """\
                queues:
                  - name: q
                    arguments:
                      x-queue-mode: lazy
                      x-queue-master-locator: min-masters
                      x-colour: blue
                policies:
                  - name: ha
                    pattern: '.*'
                    definition: {ha-mode: all}
                x-burrowmq: {rabbitmq: "3.13"}
                """
            )
        )
        loaded = read_topology(file)
        found = [(w.line, w.path) for w in loaded.warnings]
        assert found == [
            (4, "queues[0].arguments.x-queue-mode"),
            (5, "queues[0].arguments.x-queue-master-locator"),
            (6, "queues[0].arguments.x-colour"),
            (10, "policies[0].definition.ha-mode"),
        ]
        assert "removed in RabbitMQ 4.0" in loaded.warnings[3].message

    def test_duplicate_binding_is_a_warning(self, write: Writer) -> None:
        """The same binding twice is harmless and only warned about."""
        binding = "  - {source: orders, destination: audit}\n"
        file = write(HEAD + "bindings:\n" + binding + binding)
        loaded = read_topology(file)
        assert [w.line for w in loaded.warnings] == [8]
        assert len(loaded.topology.bindings) == 1


class TestLoading:
    """A good file becomes a Topology with settings and origins."""

    def test_definitions_export_keys_are_accepted(self, write: Writer) -> None:
        """Top-level keys of a definitions export are ignored, not errors."""
        data: dict[str, Any] = {
            "rabbit_version": "3.10.8",
            "rabbitmq_version": "3.10.8",
            "product_name": "RabbitMQ",
            "product_version": "3.10.8",
            "users": [],
            "vhosts": [{"name": "/"}],
            "permissions": [],
            "topic_permissions": [],
            "parameters": [],
            "global_parameters": [],
            "policies": [],
            "queues": [
                {
                    "name": "q",
                    "vhost": "/",
                    "durable": True,
                    "auto_delete": False,
                    "arguments": {"x-queue-type": "classic"},
                }
            ],
            "exchanges": [
                {
                    "name": "e",
                    "vhost": "/",
                    "type": "fanout",
                    "durable": True,
                    "auto_delete": False,
                    "internal": False,
                    "arguments": {},
                }
            ],
            "bindings": [
                {
                    "source": "e",
                    "vhost": "/",
                    "destination": "q",
                    "destination_type": "queue",
                    "routing_key": "",
                    "arguments": {},
                }
            ],
        }
        topology = load_topology(write(json.dumps(data), name="defs.json"))
        assert [q.name for q in topology.queues] == ["q"]
        assert topology.exchange("e") == Exchange(name="e", type="fanout", vhost="/")

    def test_default_queue_type(self, write: Writer) -> None:
        """x-burrowmq.default_queue_type fills x-queue-type where a queue sets none."""
        file = write(
            "x-burrowmq: {version: 1, default_queue_type: quorum}\n"
            "queues:\n  - name: a\n  - {name: b, type: classic}\n"
        )
        loaded = read_topology(file)
        assert loaded.settings.default_queue_type == "quorum"
        queue_a, queue_b = loaded.topology.queues
        assert queue_a.arguments["x-queue-type"] == "quorum"
        assert queue_b.queue_type == "classic"

    def test_known_entities_satisfy_references(self) -> None:
        """Names declared elsewhere (an App's routes) may be bound and dead-lettered to."""
        text = (
            "queues:\n  - name: q\n    arguments: {x-dead-letter-exchange: app.dlx}\n"
            "bindings:\n  - {source: app.events, destination: app.queue}\n"
            "  - {source: app.headers, destination: q}\n"
        )
        known = Topology(
            exchanges=[
                Exchange(name="app.dlx", type="fanout"),
                Exchange(name="app.events", type="topic"),
                Exchange(name="app.headers", type="headers"),
            ],
            queues=[Queue(name="app.queue")],
        )
        with pytest.raises(TopologyError) as caught:
            parse_topology(text, file="t.yaml", known=known)
        assert [e.path for e in caught.value.errors] == ["bindings[1].arguments"]

    def test_origins_name_file_and_line(self, write: Writer) -> None:
        """Each entity remembers the file and line it was declared on."""
        file = write(HEAD)
        topology = load_topology(file)
        queue = topology.queue("audit")
        assert queue is not None
        assert topology.origin_of(queue) == f"{file}:5"

    def test_standard_exchanges_are_known(self) -> None:
        """Bindings from amq.* exchanges need no declaration."""
        text = "queues:\n  - name: q\nbindings:\n  - {source: amq.topic, destination: q}\n"
        loaded = parse_topology(text)
        assert loaded.topology.bindings[0].source == "amq.topic"

    def test_empty_file(self, write: Writer) -> None:
        """An empty file is an empty topology."""
        assert load_topology(write("")) == Topology()


class TestStreams:
    """Stream queues with their retention load as they are."""

    def test_stream_retention_loads(self) -> None:
        """x-max-age, x-max-length-bytes and the segment size are accepted on a stream."""
        loaded = parse_topology(
            "queues:\n  - name: events\n    arguments: {x-queue-type: stream, x-max-age: 7D, "
            "x-max-length-bytes: 1000000000, x-stream-max-segment-size-bytes: 50000000}\n",
            file="t.yaml",
        )
        assert not loaded.warnings
        [queue] = loaded.topology.queues
        assert queue.arguments["x-max-age"] == "7D"
