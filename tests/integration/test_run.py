"""``burrowmq run`` as a user runs it: a real subprocess, real signals, the real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from tests.integration.conftest import queue_depth

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BURROWMQ = str(Path(sys.executable).with_name("burrowmq"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestSecondCtrlC:
    """A second SIGINT while draining stops at once, and loses nothing."""

    @pytest.mark.timeout(90)
    async def test_second_sigint_abandons_the_drain(self, broker_url: str, names: Any) -> None:
        """With a 60 s handler in flight, two SIGINTs end the process within seconds; the message is back on the queue and the log says why."""
        queue = names.queue("ctrl-c")
        port = _free_port()
        env = {
            **os.environ,
            "BURROWMQ_URL": broker_url,
            "BURROWMQ_PROBE_QUEUE": queue,
            "BURROWMQ_PROBE_SECONDS": "60",
        }
        process = await asyncio.create_subprocess_exec(
            BURROWMQ, "run", "tests.integration.probe_app:app", "--http", f"127.0.0.1:{port}",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(200):
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("the service never became ready")
                connection = await aio_pika.connect(broker_url)
                try:
                    channel = await connection.channel()
                    await channel.default_exchange.publish(
                        aio_pika.Message(b'{"n": 1}', content_type="application/json"),
                        routing_key=queue,
                    )
                    for _ in range(100):  # until the handler runs
                        busy = (await http.get("/readyz")).json()["consumers"][0]["in_flight"]
                        if busy:
                            break
                        await asyncio.sleep(0.05)
                    else:
                        pytest.fail("the handler never started")
                    process.send_signal(signal.SIGINT)
                    for _ in range(100):  # until the drain is under way
                        if (await http.get("/readyz")).status_code == 503:
                            break
                        await asyncio.sleep(0.05)
                    started = time.monotonic()
                    process.send_signal(signal.SIGINT)
                    code = await asyncio.wait_for(process.wait(), 10)
                    elapsed = time.monotonic() - started
                    assert process.stderr is not None
                    log = (await process.stderr.read()).decode()
                    assert code == 0, log[-2000:]
                    assert elapsed < 5, f"took {elapsed:.1f}s after the second Ctrl-C"
                    assert "shutdown_requested" in log
                    assert "timeout=15.0" in log
                    assert "press Ctrl-C again to stop at once" in log
                    assert "shutdown_forced" in log
                    assert f"'{queue}': 1" in log, log[-2000:]
                    assert "redelivers" in log
                    assert "shutdown_timeout" not in log
                    # Not acked: the broker put it back on the queue.
                    deadline = time.monotonic() + 10
                    while await queue_depth(channel, queue) != 1:
                        assert time.monotonic() < deadline, "the message did not come back"
                        await asyncio.sleep(0.1)
                finally:
                    await connection.close()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
