"""The probe server over real HTTP: /metrics parsed by prometheus-client, /healthz, /readyz,
and readiness turning false on SIGTERM before the drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from burrowmq import Router
from burrowmq.instrumentation import Prometheus
from burrowmq.instrumentation.http import ProbeServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BURROWMQ = str(Path(sys.executable).with_name("burrowmq"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestProbeServer:
    """An App's probes, served in process."""

    @pytest.mark.timeout(60)
    async def test_metrics_health_and_readiness(self, make_app: Any, names: Any) -> None:
        """/metrics counts what was driven (parsed with prometheus-client); /healthz and /readyz answer 200 while running, 503 after."""
        registry = CollectorRegistry()
        queue = names.queue("probed")
        handled = asyncio.Event()
        seen: list[int] = []
        router = Router()

        @router.consume(queue, queue_options={})
        async def job(body: dict[str, int]) -> None:
            seen.append(body["n"])
            if len(seen) == 25:
                handled.set()

        app = make_app(router, instrumentation=[Prometheus(registry)])
        probes = ProbeServer(app, "127.0.0.1", 0)
        await probes.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{probes.port}") as http:
                assert (await http.get("/readyz")).status_code == 503  # not started yet
                await app.start()
                for n in range(25):
                    await app.publish("", {"n": n}, routing_key=queue)
                await asyncio.wait_for(handled.wait(), 20)
                await asyncio.sleep(0.1)
                metrics = await http.get("/metrics")
                assert metrics.status_code == 200
                assert metrics.headers["content-type"].startswith("text/plain")
                families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
                acked = [
                    s.value
                    for s in families["burrowmq_messages"].samples
                    if s.name == "burrowmq_messages_total" and s.labels["queue"] == queue
                ]
                assert acked == [25]
                confirmed = [
                    s.value
                    for s in families["burrowmq_published"].samples
                    if s.name == "burrowmq_published_total" and s.labels["exchange"] == ""
                ]
                assert confirmed == [25]
                live = await http.get("/healthz")
                assert (live.status_code, live.json()["live"]) == (200, True)
                ready = await http.get("/readyz")
                assert ready.status_code == 200, ready.text
                body = ready.json()
                assert body["ready"] and body["connected"]
                [consumer] = [c for c in body["consumers"] if c["queue"] == queue]
                assert consumer["consuming"] and consumer["in_flight"] == 0
                assert 0 <= consumer["seconds_since_delivery"] < 30
                await app.stop()
                after = await http.get("/readyz")
                assert after.status_code == 503
                assert "the app is closed" in after.json()["problems"]
                assert (await http.get("/healthz")).status_code == 503
        finally:
            await probes.stop()


class TestSigterm:
    """``burrowmq run --http``: SIGTERM turns readiness false first, then the drain runs."""

    @pytest.mark.timeout(90)
    async def test_readiness_flips_before_the_drain(self, broker_url: str, names: Any) -> None:
        """While a 3 s handler drains after SIGTERM, /readyz is 503 and /healthz still 200; the process then exits 0."""
        queue = names.queue("draining")
        port = _free_port()
        env = {
            **os.environ,
            "BURROWMQ_URL": broker_url,
            "BURROWMQ_PROBE_QUEUE": queue,
            "BURROWMQ_PROBE_SECONDS": "3",
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
                finally:
                    await connection.close()
                for _ in range(100):  # until the handler runs
                    busy = (await http.get("/readyz")).json()["consumers"][0]["in_flight"]
                    if busy:
                        break
                    await asyncio.sleep(0.05)
                process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                ready = await http.get("/readyz")
                assert ready.status_code == 503
                assert "the app is shutting down" in ready.json()["problems"] or (
                    "the app is stopping" in ready.json()["problems"]
                )
                assert (await http.get("/healthz")).status_code == 200, "still draining"
            code = await asyncio.wait_for(process.wait(), 30)
            assert code == 0, (
                (await process.stderr.read()).decode()[-2000:] if process.stderr else ""
            )
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
