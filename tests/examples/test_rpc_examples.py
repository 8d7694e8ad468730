"""The RPC examples run: the pricing service, its client script and `burrowmq rpc call`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.examples, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
BURROWMQ = str(Path(sys.executable).with_name("burrowmq"))


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BURROWMQ_URL"] = url
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def _run(*argv: str, url: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=_env(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TestPricingService:
    """`burrowmq run examples.rpc_pricing:app` answers the client script and the CLI."""

    async def test_client_and_cli_against_the_service(self, fresh_vhost: str) -> None:
        """The client script reports OK, and `rpc call` prints replies and remote errors."""
        server = await asyncio.create_subprocess_exec(
            BURROWMQ,
            "run",
            "examples.rpc_pricing:app",
            "--log-json",
            cwd=ROOT,
            env=_env(fresh_vhost),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert server.stderr is not None
        started, stopped = asyncio.Event(), asyncio.Event()
        lines: list[str] = []

        async def read_log() -> None:
            assert server.stderr is not None
            while line := (await server.stderr.readline()).decode():
                lines.append(line)
                if '"event": "app_started"' in line:
                    started.set()
                if '"event": "app_stopped"' in line:
                    stopped.set()
            started.set()  # exited: let the test see it

        reader = asyncio.create_task(read_log())
        try:
            await asyncio.wait_for(started.wait(), 30)
            assert server.returncode is None, "".join(lines)

            code, out, err = await _run(
                sys.executable, "-m", "examples.rpc_client", url=fresh_vhost
            )
            assert code == 0, out + err
            assert "quote: 3 x tea = 12.15 EUR" in out
            assert "pricing.refund -> UnknownProcedure" in out
            assert "rpc client: OK" in out

            code, out, err = await _run(
                BURROWMQ, "rpc", "call", "pricing.quote", '{"sku": "cocoa", "quantity": 2}',
                "--timeout", "10", url=fresh_vhost,
            )  # fmt: skip
            assert code == 0, err
            assert json.loads(out)["total"] == "10.50"

            code, out, err = await _run(
                BURROWMQ, "rpc", "call", "pricing.quote", '{"sku": "tea", "quantity": 0}',
                url=fresh_vhost,
            )  # fmt: skip
            assert code == 1
            assert "remote error: ValidationError" in err
            assert "quantity" in err

            code, out, err = await _run(
                BURROWMQ, "rpc", "call", "nobody.home", "{}", url=fresh_vhost
            )
            assert code == 1
            assert "no server is bound for nobody.home" in err

            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(stopped.wait(), 30)
            assert await asyncio.wait_for(server.wait(), 30) == 0
        finally:
            if server.returncode is None:
                server.kill()
                await server.wait()
            await reader
