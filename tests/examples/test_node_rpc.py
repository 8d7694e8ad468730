"""The Node.js RPC client example (examples/node-rpc) calls a burrowmq service.

The client follows the wire protocol of docs/reference/rpc-protocol.md with amqplib
alone; the server is examples/rpc_pricing.py, run here in a fresh vhost of the real
broker. Without node and npm the tests skip (where ``CI=true`` they fail). ``npm ci``
runs in a temporary copy of the example, with npm's download cache in the venv, so a
second run installs from the cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from examples import rpc_pricing
from tests.conftest import IN_CI

pytestmark = [pytest.mark.examples, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node-rpc"
NPM_CACHE = Path(sys.prefix) / "npm-cache"


async def _run(*argv: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with its locked dependencies installed by ``npm ci``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are needed for the Node.js RPC example"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing tool is a failure)")
        pytest.skip(message)
    work = tmp_path_factory.mktemp("node-rpc")
    for name in ("client.js", "package.json", "package-lock.json"):
        shutil.copy(EXAMPLE / name, work / name)
    result = subprocess.run(
        [npm, "ci", "--cache", str(NPM_CACHE), "--prefer-offline", "--no-audit", "--no-fund"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, f"npm ci failed:\n{result.stdout}{result.stderr}"
    return work


async def _call(work: Path, url: str, procedure: str, payload: object) -> tuple[int, str]:
    env = dict(os.environ, BURROWMQ_URL=url)
    return await _run(
        "node", "client.js", procedure, json.dumps(payload), cwd=work, env=env, timeout=30
    )


class TestNodeRpcClient:
    """The amqplib client gets results and remote errors from a burrowmq RPC server."""

    async def test_result_and_remote_errors(self, node_client: Path, fresh_vhost: str) -> None:
        """A quote comes back as the model's JSON; a handler's exception and a request
        that does not validate come back as error envelopes with type and module."""
        async with rpc_pricing.app.replace(urls=(fresh_vhost,)):
            code, out = await _call(
                node_client, fresh_vhost, "pricing.quote", {"sku": "tea", "quantity": 3}
            )
            assert code == 0, out
            result = json.loads(out)["result"]
            assert result["sku"] == "tea"
            assert result["total"] == "13.50"

            code, out = await _call(
                node_client, fresh_vhost, "pricing.convert",
                {"amount": "10", "source": "EUR", "target": "USD"},
            )  # fmt: skip
            assert code == 0, out
            assert json.loads(out)["result"] == "10.80"

            code, out = await _call(
                node_client, fresh_vhost, "pricing.quote", {"sku": "caviar", "quantity": 1}
            )
            assert code == 1, out
            error = json.loads(out)["error"]
            assert error["type"] == "UnknownSkuError"
            assert error["module"] == "examples.rpc_pricing"
            assert "no product 'caviar'" in error["message"]
            assert error["traceback"] is None

            code, out = await _call(
                node_client, fresh_vhost, "pricing.quote", {"sku": "tea", "quantity": 0}
            )
            assert code == 1, out
            error = json.loads(out)["error"]
            assert error["type"] == "ValidationError"
            assert error["module"] is None
            assert "quantity" in error["message"]
            assert error["details"]

    async def test_no_server_is_returned_at_once(self, node_client: Path, fresh_vhost: str) -> None:
        """With no queue bound for the service, the mandatory request comes back: no wait."""
        async with rpc_pricing.app.replace(urls=(fresh_vhost,)):  # declares burrowmq.rpc
            code, out = await _call(node_client, fresh_vhost, "nobody.home", {})
        assert code == 2, out
        assert "no server for nobody.home" in out
