"""The examples run: the demo end to end, and a service through `burrowmq run`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

pytestmark = [pytest.mark.examples, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
BURROWMQ = str(Path(sys.executable).with_name("burrowmq"))


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BURROWMQ_URL"] = url
    env["PYTHONUNBUFFERED"] = "1"
    return env


class TestDemo:
    def test_demo_runs_end_to_end_on_rabbitmq(self, fresh_vhost: str) -> None:
        """`python -m examples.demo` drives every pattern on the broker and reports OK."""
        result = subprocess.run(
            [sys.executable, "-m", "examples.demo"],
            cwd=ROOT,
            env=_env(fresh_vhost),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "against RabbitMQ at" in result.stdout
        assert "billing charged ['o-1', 'o-2']" in result.stdout
        assert "demo: OK" in result.stdout

    def test_demo_falls_back_to_memory_and_says_so(self) -> None:
        """With no RabbitMQ at the URL, the demo runs on the in-memory transport and says which."""
        result = subprocess.run(
            [sys.executable, "-m", "examples.demo"],
            cwd=ROOT,
            env=_env("amqp://guest:guest@127.0.0.1:1/"),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "in-memory transport" in result.stdout
        assert "demo: OK" in result.stdout
        assert "AMQPConnectionError" not in result.stdout + result.stderr


class TestRunCommand:
    @pytest.mark.parametrize(("loop", "expected"), [("auto", "uvloop"), ("asyncio", "asyncio")])
    async def test_run_serves_until_sigterm(
        self, fresh_vhost: str, loop: str, expected: str
    ) -> None:
        """`burrowmq run examples.direct:app` consumes, then exits 0 on SIGTERM, on either loop.

        uvloop is installed with the dev tools, so ``auto`` runs on it, as it would with
        ``burrowmq[speed]``.
        """
        process = await asyncio.create_subprocess_exec(
            BURROWMQ,
            "run",
            "examples.direct:app",
            "--log-json",
            "--loop",
            loop,
            cwd=ROOT,
            env=_env(fresh_vhost),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        try:
            lines: list[str] = []

            async def until(event: str) -> None:
                while True:
                    line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
                    assert line, "burrowmq run exited early:\n" + "".join(lines)
                    lines.append(line)
                    if f'"event": "{event}"' in line:
                        return

            await until("app_started")
            [chosen] = [json.loads(line) for line in lines if '"event": "event_loop"' in line]
            assert chosen["loop"] == expected
            connection = await aio_pika.connect(fresh_vhost)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.get_exchange("billing")
                body = b'{"order_id": "cli-1", "amount": 3.5}'
                await exchange.publish(
                    aio_pika.Message(body, content_type="application/json"), routing_key="charge"
                )
            await until("charged")
            assert "cli-1" in lines[-1]
            process.send_signal(signal.SIGTERM)
            await until("app_stopped")
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    def test_unreachable_broker_message_masks_password(self) -> None:
        """With no broker at the URL, run exits 1 naming host, port and user, never the password."""
        result = subprocess.run(
            [BURROWMQ, "run", "examples.direct:app", "--url", "amqp://alice:s3cret@127.0.0.1:1/"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert "127.0.0.1:1" in result.stderr
        assert "'alice'" in result.stderr
        assert "s3cret" not in result.stderr + result.stdout

    def test_bad_target_is_a_usage_error(self) -> None:
        """A target that is not module:app exits 2 with a message naming it."""
        result = subprocess.run(
            [BURROWMQ, "run", "examples.nope:app"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "examples.nope" in result.stderr
