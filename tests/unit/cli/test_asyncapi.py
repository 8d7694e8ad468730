"""Tests for `burrowmq asyncapi`: the command prints or writes the document (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from burrowmq.cli import build_parser, main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """module:app targets import from the current directory."""
    monkeypatch.chdir(ROOT)


class TestAsyncapiCommand:
    """burrowmq asyncapi module:app [--format] [--topology] [--output] [--version]."""

    def test_listed_among_the_commands(self) -> None:
        """The command is registered with the others."""
        parser = build_parser()
        args = parser.parse_args(["asyncapi", "examples.shop:app"])
        assert args.command == "asyncapi" and args.format == "yaml"

    def test_prints_yaml_by_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The document goes to stdout as YAML."""
        assert main(["asyncapi", "examples.shop:app"]) == 0
        document = yaml.safe_load(capsys.readouterr().out)
        assert document["asyncapi"] == "3.0.0" and document["info"]["title"] == "shop"

    def test_json_to_a_file_with_a_version(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--format json --output FILE --version V writes JSON there, nothing on stdout."""
        out = tmp_path / "api.json"
        code = main(
            [
                "asyncapi",
                "examples.rpc_pricing:app",
                "--format",
                "json",
                "-o",
                str(out),
                "--version",
                "1.4.0",
                "--topology",
                str(ROOT / "examples" / "topology.yaml"),
            ]
        )
        assert code == 0
        assert capsys.readouterr().out == ""
        document = json.loads(out.read_text())
        assert document["info"]["version"] == "1.4.0"
        assert any(c["address"] == "reports.generate" for c in document["channels"].values())

    def test_a_conflicting_topology_fails(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A topology that contradicts the routes exits 1 naming the conflict."""
        topology = str(ROOT / "examples" / "topology.yaml")
        assert main(["asyncapi", "examples.shop:app", "--topology", topology]) == 1
        assert "exchange 'orders' is declared twice" in capsys.readouterr().err

    def test_not_an_app(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A target that is no App is a usage error."""
        assert main(["asyncapi", "examples.direct:charged"]) == 2
