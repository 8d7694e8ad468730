"""The AsyncAPI documents burrowmq writes, checked by the official AsyncAPI parser.

``@asyncapi/parser`` (pinned by package-lock.json beside this file) is installed with
``npm ci`` once per lock file into ``.venv/asyncapi-parser-<hash>`` and run by the
machine's Node.js. Without node or npm the tests skip, except where ``CI=true``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from burrowmq.cli import main
from tests.asyncapi.apps import PASSWORD
from tests.conftest import IN_CI

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FILES = ("package.json", "package-lock.json", "validate.js")


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI=true: the AsyncAPI parser must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def validator() -> Path:
    """validate.js with @asyncapi/parser installed beside it (npm ci, cached)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node and npm are needed to run @asyncapi/parser")
    digest = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()[:12]
    cache = ROOT / ".venv" / f"asyncapi-parser-{digest}"
    if not (cache / "node_modules" / "@asyncapi" / "parser").is_dir():
        work = cache.with_name(f"{cache.name}.{uuid.uuid4().hex[:8]}")
        work.mkdir(parents=True)
        for name in FILES[:2]:
            shutil.copy(HERE / name, work / name)
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            _missing(f"npm ci of @asyncapi/parser failed: {done.stderr[-2000:]}")
        try:
            work.rename(cache)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(work, ignore_errors=True)
    shutil.copy(HERE / "validate.js", cache / "validate.js")
    return cache / "validate.js"


def _parse(validator: Path, *files: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["node", str(validator), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode not in (0, 1):
        raise AssertionError(f"validate.js crashed: {done.stderr}")
    results = [json.loads(line) for line in done.stdout.splitlines()]
    for result in results:
        print(  # shown with -s or on failure: the parser's findings
            f"{Path(result['file']).name}: {len(result['errors'])} error(s), "
            f"{len(result['warnings'])} warning(s), {len(result['infos'])} info(s)"
        )
        for finding in result["warnings"] + result["infos"]:
            print(f"  {finding['code']}: {finding['message']} at {finding['path']}")
    return results


def _generate(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["asyncapi", *args, "--output", str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI imports ``module:app`` from the current directory: the repository."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", [str(ROOT), *sys.path])


class TestOfficialParser:
    """@asyncapi/parser finds no error in the documents of the examples."""

    def test_shop_document_has_no_errors(self, validator: Path, tmp_path: Path) -> None:
        """The document of examples/shop.py, in YAML and in JSON, parses without errors."""
        yaml_doc = _generate(tmp_path, "shop.yaml", "examples.shop:app")
        json_doc = _generate(tmp_path, "shop.json", "examples.shop:app", "--format", "json")
        results = _parse(validator, yaml_doc, json_doc)
        assert [r["errors"] for r in results] == [[], []]

    def test_documents_with_the_example_topology_have_no_errors(
        self, validator: Path, tmp_path: Path
    ) -> None:
        """An App on examples/topology.yaml (RPC, retry tiers, dead letters, per-instance
        queues, headers bindings) and the pricing example with --topology parse cleanly."""
        rich = _generate(tmp_path, "reports.yaml", "tests.asyncapi.apps:app", "--version", "2.1.0")
        pricing = _generate(
            tmp_path,
            "pricing.json",
            "examples.rpc_pricing:app",
            "--topology",
            str(ROOT / "examples" / "topology.yaml"),
            "--format",
            "json",
        )
        results = _parse(validator, rich, pricing)
        assert [r["errors"] for r in results] == [[], []]
        assert PASSWORD not in rich.read_text()

    def test_the_parser_reports_errors(self, validator: Path, tmp_path: Path) -> None:
        """A broken document (an unknown exchange type) is an error: the check has teeth."""
        good = json.loads(
            _generate(tmp_path, "shop.json", "examples.shop:app", "--format", "json").read_text()
        )
        channel = good["channels"]["exchange-billing"]
        channel["bindings"]["amqp"]["exchange"]["type"] = "nonsense"
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps(good))
        (result,) = _parse(validator, broken)
        assert any("exchange.type" in e["path"] for e in result["errors"])


def test_node_is_found_in_ci() -> None:
    """Where CI=true, node must be installed (the parser tests may not skip there)."""
    if IN_CI:
        assert shutil.which("node") and shutil.which("npm"), os.environ.get("PATH")
