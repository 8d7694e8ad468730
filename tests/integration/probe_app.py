"""A service the probe tests run with ``burrowmq run ... --http``: one slow consumer.

Configured by the environment: ``BURROWMQ_PROBE_QUEUE`` (the quorum queue it consumes)
and ``BURROWMQ_PROBE_SECONDS`` (how long each message takes).
"""

from __future__ import annotations

import asyncio
import os

from burrowmq import App, Router
from burrowmq.instrumentation import Prometheus

router = Router()


@router.consume(os.environ.get("BURROWMQ_PROBE_QUEUE", "probe.jobs"), queue_options={})
async def work(body: dict[str, int]) -> None:
    """Take a while."""
    await asyncio.sleep(float(os.environ.get("BURROWMQ_PROBE_SECONDS", "0")))


app = App([router], name="probe-app", shutdown_timeout=15.0, instrumentation=[Prometheus()])
