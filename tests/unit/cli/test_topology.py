"""Tests for `burrowmq topology` validate, export, graph and route (no broker)."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from burrowmq.cli import build_parser, main
from burrowmq.cli.topology import routing_graph
from burrowmq.framework.matching import route
from burrowmq.topology.loader import parse_topology

pytestmark = pytest.mark.unit

GOOD = textwrap.dedent(
    """\
    exchanges:
      - {name: orders, type: topic, arguments: {alternate-exchange: unrouted}}
      - {name: unrouted, type: fanout}
      - {name: docs, type: headers}
      - {name: regional, type: direct}
    queues:
      - {name: audit, arguments: {x-queue-type: quorum, x-queue-mode: lazy}}
      - {name: lost}
      - {name: pdf}
      - {name: eu}
    bindings:
      - {source: orders, destination: audit, routing_key: "order.*.placed"}
      - {source: orders, destination: regional, destination_type: exchange, routing_key: "order.eu.*"}
      - {source: regional, destination: eu, routing_key: order.eu.placed}
      - {source: unrouted, destination: lost}
      - {source: docs, destination: pdf, arguments: {x-match: all, format: pdf, copies: 2}}
    """
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo the structlog configuration main() installs (it binds capsys's stream)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A valid topology file."""
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD, encoding="utf-8")
    return path


class TestValidate:
    """validate prints every problem and exits 1, or a summary and exits 0."""

    def test_valid(self, good: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A good file exits 0 with counts; warnings go to stderr."""
        assert main(["topology", "validate", str(good)]) == 0
        out, err = capsys.readouterr()
        assert "valid: 4 exchanges, 4 queues, 5 bindings, 0 policies" in out
        assert f"warning: {good}:7: queues[0].arguments.x-queue-mode:" in err

    def test_invalid(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad file exits 1 and prints each problem as FILE:LINE: path: message."""
        path = tmp_path / "bad.yaml"
        path.write_text("queues:\n  - name: q\n    arguments: {x-max-length: x}\n  - {}\n")
        assert main(["topology", "validate", str(path)]) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0] == f"{path}:3: queues[0].arguments.x-max-length: must be an integer, got 'x'"
        assert err[1] == f"{path}:4: queues[1].name: is required"
        assert err[2] == "2 error(s)"


class TestRoute:
    """route answers with the queues the one matching implementation finds."""

    def test_topic_and_exchange_to_exchange(
        self, good: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A key matching a pattern and an e2e binding reaches both queues."""
        assert main(["topology", "route", str(good), "orders", "order.eu.placed"]) == 0
        assert capsys.readouterr().out.split() == ["audit", "eu"]

    def test_alternate_exchange(self, good: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A key nothing matches goes to the alternate exchange's queue."""
        assert main(["topology", "route", str(good), "orders", "nothing"]) == 0
        assert capsys.readouterr().out.split() == ["lost"]

    def test_headers(self, good: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Headers given as name=value match, numbers read as numbers."""
        argv = ["topology", "route", str(good), "docs", "", "--header", "format=pdf"]
        assert main([*argv, "--header", "copies=2"]) == 0
        assert capsys.readouterr().out.split() == ["pdf"]
        assert main([*argv, "--header", 'copies="2"']) == 1
        assert "unroutable" in capsys.readouterr().err

    def test_per_instance_queue_reads_as_its_pattern(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A per-instance (server-named) queue prints as `<instance>`, as graph draws it."""
        assert main(["topology", "route", "examples.shop:app", "cache.invalidate", ""]) == 0
        assert capsys.readouterr().out.split() == ["cache.invalidate.invalidate.<instance>"]
        assert main(["topology", "route", "examples.shop:app", "billing", "charge"]) == 0
        assert capsys.readouterr().out.split() == ["billing.charge"]

    def test_policy_alternate_exchange(self) -> None:
        """An alternate-exchange set by a matching policy is followed too."""
        loaded = parse_topology(
            "exchanges: [{name: a, type: direct}, {name: ae, type: fanout}]\n"
            "queues: [{name: q}]\nbindings: [{source: ae, destination: q}]\n"
            "policies: [{name: p, pattern: '^a$', apply-to: exchanges,"
            " definition: {alternate-exchange: ae}}]\n"
        )
        assert route(routing_graph(loaded.topology), "a", "x") == {"q"}


class TestExportAndGraph:
    """export and graph write to stdout or a file."""

    def test_export_json(self, good: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The JSON export names the vhost on every entity."""
        assert main(["topology", "export", str(good), "--format", "json", "--vhost", "v"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert {q["vhost"] for q in data["queues"]} == {"v"}

    def test_export_json_of_an_app_names_its_vhost(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An App's JSON export carries the vhost its URL names (not always /); --vhost wins."""
        module = f"vhost_app_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(
                """\
                from burrowmq import App, Router
                router = Router()

                @router.direct("billing", "charge", queue="billing.charge")
                async def charge(body: dict) -> None: ...

                app = App([router], url="amqp://svc:secret@rabbit/shop%2Fprod")
                """
            ),
            encoding="utf-8",
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        assert main(["topology", "export", f"{module}:app", "--format", "json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert {q["vhost"] for q in data["queues"]} == {"shop/prod"}
        assert {e["vhost"] for e in data["exchanges"]} == {"shop/prod"}
        args = ["topology", "export", f"{module}:app", "--format", "json", "--vhost", "other"]
        assert main(args) == 0
        assert {q["vhost"] for q in json.loads(capsys.readouterr().out)["queues"]} == {"other"}

    def test_graph_to_file(self, good: Path, tmp_path: Path) -> None:
        """-o writes the diagram to a file."""
        target = tmp_path / "graph.dot"
        assert main(["topology", "graph", str(good), "--format", "dot", "-o", str(target)]) == 0
        assert target.read_text().startswith("digraph topology {")

    def test_app_target(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An App as module:attribute is exported without its per-instance queues."""
        assert main(["topology", "export", "examples.shop:app"]) == 0
        out = capsys.readouterr().out
        loaded = parse_topology(out, file="export.yaml")
        names = {q.name for q in loaded.topology.queues}
        assert "billing.charge" in names
        assert not any(q.exclusive for q in loaded.topology.queues)


MULTI_VHOST = textwrap.dedent(
    """\
    {
      "exchanges": [
        {"name": "orders", "vhost": "/", "type": "topic"},
        {"name": "orders", "vhost": "staging", "type": "fanout"}
      ],
      "queues": [
        {"name": "audit", "vhost": "/", "durable": true},
        {"name": "audit.staging", "vhost": "staging", "durable": true}
      ],
      "bindings": [
        {"source": "orders", "vhost": "/", "destination": "audit",
         "destination_type": "queue", "routing_key": "order.#"},
        {"source": "orders", "vhost": "staging", "destination": "audit.staging",
         "destination_type": "queue", "routing_key": ""}
      ]
    }
    """
)

DEFINITIONS = Path(__file__).resolve().parents[2] / "data" / "definitions"


@pytest.fixture
def multi(tmp_path: Path) -> Path:
    """A definitions export of two virtual hosts."""
    path = tmp_path / "broker.json"
    path.write_text(MULTI_VHOST, encoding="utf-8")
    return path


class TestVhostOption:
    """--vhost picks the virtual host of a file whose entities name several."""

    @pytest.mark.parametrize(
        "argv",
        [
            ["validate", "f.json"],
            ["plan", "f.json"],
            ["apply", "f.json"],
            ["export", "f.json"],
            ["graph", "f.json"],
            ["route", "f.json", "orders", "key"],
        ],
    )
    def test_every_file_command_takes_it(self, argv: list[str]) -> None:
        """Each subcommand that reads a file accepts --vhost NAME."""
        args = build_parser().parse_args(["topology", *argv, "--vhost", "staging"])
        assert args.vhost == "staging"

    def test_validate(self, multi: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --vhost the file is refused, naming its vhosts; with it, it is valid."""
        assert main(["topology", "validate", str(multi)]) == 1
        err = capsys.readouterr().err
        assert f"{multi}:4: exchanges[1].vhost: 'staging' differs from '/'" in err
        assert "names 2 ('/', 'staging')" in err
        assert main(["topology", "validate", str(multi), "--vhost", "staging"]) == 0
        out = capsys.readouterr().out
        assert "valid: 1 exchanges, 1 queues, 1 bindings, 0 policies" in out

    def test_validate_rabbitmq_export(self, capsys: pytest.CaptureFixture[str]) -> None:
        """One of RabbitMQ's own test files, one vhost of three."""
        path = DEFINITIONS / "case9" / "case9b.json"
        assert main(["topology", "validate", str(path), "--vhost", "vhost3"]) == 0
        assert "valid: 0 exchanges, 1 queues, 0 bindings" in capsys.readouterr().out

    def test_export_selects_and_writes(
        self, multi: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """export --vhost takes that vhost's entities and writes its name on each."""
        argv = ["topology", "export", str(multi), "--format", "json", "--vhost", "staging"]
        assert main(argv) == 0
        data = json.loads(capsys.readouterr().out)
        assert [q["name"] for q in data["queues"]] == ["audit.staging"]
        assert [e["type"] for e in data["exchanges"]] == ["fanout"]
        assert {q["vhost"] for q in data["queues"]} == {"staging"}

    def test_export_renames_a_single_vhost(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file of one vhost is exported to another, as before, with a warning."""
        path = tmp_path / "one.json"
        path.write_text('{"queues": [{"name": "q", "vhost": "/", "durable": true}]}')
        assert main(["topology", "export", str(path), "--format", "json", "--vhost", "v"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["queues"][0]["vhost"] == "v"
        assert "in virtual host '/', not 'v'" in err

    def test_route_and_graph(self, multi: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """route and graph see only the chosen vhost's topology."""
        argv = ["topology", "route", str(multi), "orders", "order.eu", "--vhost", "/"]
        assert main(argv) == 0
        assert capsys.readouterr().out.split() == ["audit"]
        assert main([*argv[:-1], "staging"]) == 0
        assert capsys.readouterr().out.split() == ["audit.staging"]
        assert main(["topology", "graph", str(multi), "--vhost", "staging"]) == 0
        out = capsys.readouterr().out
        assert "audit.staging" in out and "order.#" not in out

    @pytest.mark.parametrize("command", ["plan", "apply"])
    def test_plan_and_apply_pass_it(
        self, multi: Path, command: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """plan and apply read the file with --vhost before reaching for a broker."""
        url = ["--url", "amqp://guest:guest@127.0.0.1:1/"]
        assert main(["topology", command, str(multi), *url]) == 1
        assert "choose one with vhost=" in capsys.readouterr().err
        assert main(["topology", command, str(multi), *url, "--vhost", "prod"]) == 1
        err = capsys.readouterr().err
        assert "no entity is in virtual host 'prod'; the file names '/', 'staging'" in err
