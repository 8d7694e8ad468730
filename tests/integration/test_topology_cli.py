"""`burrowmq topology` against the real RabbitMQ: export, import, plan and apply.

Each test works in a fresh virtual host, created through the management API and
deleted afterwards, so nothing it declares can touch other tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from burrowmq import App, Router, TopologyError
from burrowmq.topology.apply import apply_topology
from burrowmq.topology.loader import parse_topology
from burrowmq.topology.management import ManagementClient
from tests.conftest import MANAGEMENT_URL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOPOLOGY = ROOT / "examples" / "topology.yaml"


async def run_cli(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run `burrowmq ARGS` in a subprocess from the repository root, on the test broker's
    management API."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "burrowmq.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "BURROWMQ_MANAGEMENT_URL": MANAGEMENT_URL},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def vhost(management: ManagementClient) -> AsyncIterator[str]:
    """A fresh virtual host with guest allowed everything; deleted afterwards."""
    client = management
    name = f"burrowmq-test-{uuid.uuid4().hex[:10]}"
    path = quote(name, safe="")
    await client.request("PUT", f"/api/vhosts/{path}", {})
    await client.request(
        "PUT", f"/api/permissions/{path}/guest", {"configure": ".*", "write": ".*", "read": ".*"}
    )
    try:
        yield name
    finally:
        await client.request("DELETE", f"/api/vhosts/{path}")


def vhost_url(broker_url: str, vhost: str) -> str:
    """The broker URL pointed at another virtual host."""
    return broker_url.rstrip("/") + "/" + quote(vhost, safe="")


class TestRoundTrip:
    """export -> import through the management API -> plan finds everything present."""

    async def test_export_import_plan(
        self, broker_url: str, vhost: str, tmp_path: Path, management: ManagementClient
    ) -> None:
        """An example app's exported definitions import and then plan as all matching."""
        definitions = tmp_path / "shop.json"
        code, _, err = await run_cli(
            "topology", "export", "examples.shop:app", "--format", "json",
            "--vhost", vhost, "-o", str(definitions),
        )  # fmt: skip
        assert code == 0, err
        # The management API imports a definitions file into one vhost, as
        # `rabbitmqctl import_definitions` does (without needing the host's CLI).
        await management.request(
            "POST", f"/api/definitions/{quote(vhost, safe='')}", json.loads(definitions.read_text())
        )
        url = vhost_url(broker_url, vhost)
        # import_definitions finishes asynchronously: plan until nothing is left to create.
        for _ in range(60):
            code, out, err = await run_cli("topology", "plan", "examples.shop:app", "--url", url)
            if "\n0 to create," in out:
                break
            await asyncio.sleep(0.5)
        assert code == 0, err
        summary = out.strip().splitlines()[-1]
        assert summary.startswith("0 to create, ") and summary.endswith(", 0 differing")
        present = int(summary.split(", ")[1].split()[0])
        assert present == out.count("= present") >= 20


class TestApply:
    """apply creates what is missing, is a no-op the second time, refuses conflicts."""

    async def test_apply_twice(self, broker_url: str, vhost: str) -> None:
        """The first apply creates everything; the second finds it all present."""
        url = vhost_url(broker_url, vhost)
        code, first, err = await run_cli("topology", "apply", str(EXAMPLE_TOPOLOGY), "--url", url)
        assert code == 0, err
        assert "+ created  queue 'reports.generate'" in first
        assert "+ created  policy 'archive-cap'" in first
        code, second, err = await run_cli("topology", "apply", str(EXAMPLE_TOPOLOGY), "--url", url)
        assert code == 0, err
        assert second.strip() == "nothing to do: all 14 entities present and matching"
        code, plan, err = await run_cli("topology", "plan", str(EXAMPLE_TOPOLOGY), "--url", url)
        assert code == 0, err
        assert plan.strip().endswith("0 to create, 14 present and matching, 0 differing")

    async def test_conflict_names_both_values_and_spares_consumers(
        self, broker_url: str, vhost: str, tmp_path: Path
    ) -> None:
        """A queue with another x-max-length fails apply, naming 10 and 20; consumers go on."""
        url = vhost_url(broker_url, vhost)
        received: asyncio.Queue[str] = asyncio.Queue()
        router = Router()

        @router.direct(
            "work", "job", queue="work.jobs", queue_options={"arguments": {"x-max-length": 10}}
        )
        async def job(text: str) -> None:
            await received.put(text)

        conflicting = conflicting_topology()
        path = tmp_path / "conflict.yaml"
        path.write_text(conflicting, encoding="utf-8")
        app = App([router], url=url, shutdown_timeout=5.0, connect_timeout=15.0)
        async with app:
            await app.publish("work", "before", routing_key="job")
            assert await asyncio.wait_for(received.get(), 30) == "before"

            code, out, err = await run_cli("topology", "apply", str(path), "--url", url)
            assert code == 1, out
            assert "queue 'work.jobs'" in err
            assert "x-max-length: broker has 10, topology has 20" in err

            code, out, err = await run_cli(
                "topology", "apply", str(path), "--url", url, "--no-management"
            )
            assert code == 1, out
            assert "queue 'work.jobs'" in err
            assert "x-max-length=10" in err and "x-max-length=20" in err

            # The same 406 on the app's own connection closes only its declaration channel.
            topology = parse_topology(conflicting).topology
            with pytest.raises(TopologyError) as caught:
                await apply_topology(topology, app.transport)
            assert caught.value.argument == "x-max-length"

            await app.publish("work", "after", routing_key="job")
            assert await asyncio.wait_for(received.get(), 30) == "after"


def conflicting_topology() -> str:
    """A topology whose queue 'work.jobs' wants x-max-length 20."""
    return (
        "exchanges:\n  - {name: work, type: direct}\n  - {name: work.jobs.dlx, type: fanout}\n"
        "queues:\n  - name: work.jobs\n"
        "    arguments: {x-queue-type: quorum, x-max-length: 20,"
        " x-dead-letter-exchange: work.jobs.dlx}\n"
        "bindings:\n  - {source: work, destination: work.jobs, routing_key: job}\n"
    )
