"""Services the operations fault tests run in child processes and in the test process.

``app``: what ``burrowmq run tests.faults.ops_service:app --http HOST:PORT`` serves for
the readiness test: one quorum consumer of ``BURROWMQ_OPS_QUEUE`` and a ``Prometheus()``
instrument.

``least_privilege_app()``: a factory (``burrowmq topology apply
tests.faults.ops_service:least_privilege_app`` calls it with no arguments, naming its
entities after ``BURROWMQ_OPS_PREFIX`` and ``BURROWMQ_OPS_SERVICE``) of a service with a
consume route retried through a 2 s wait on the broker's delay ladder, a route on an exchange that always
fails and so dead-letters, and an RPC procedure. The test process builds the same App
with a ``record`` callback, to run it as a user without configure permission.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import tenacity
from pydantic import BaseModel

from burrowmq import App, Message, Retry, Router
from burrowmq.instrumentation import Prometheus


class Job(BaseModel):
    """One unit of work; a ``flaky`` one fails on its first attempt."""

    n: int
    flaky: bool = False


router = Router()


@router.consume(
    os.environ.get("BURROWMQ_OPS_QUEUE", "faults.ops"), queue_options={}, retry=Retry(attempts=1)
)
async def handle(job: Job) -> None:
    """Take the job (nothing to do)."""


app = App([router], name="fault-ops", instrumentation=[Prometheus()], shutdown_timeout=5.0)


def least_privilege_app(
    *,
    prefix: str | None = None,
    service: str | None = None,
    url: str | None = None,
    declare: bool = True,
    record: Callable[[str, Any], None] | None = None,
) -> App:
    """The least-privilege service: queues ``PREFIX.work`` and ``PREFIX.doomed``, exchange ``PREFIX.ex``, procedure ``SERVICE.double``."""
    prefix = prefix or os.environ["BURROWMQ_OPS_PREFIX"]
    service = service or os.environ["BURROWMQ_OPS_SERVICE"]
    note = record or (lambda what, value: None)
    routes = Router()

    @routes.consume(
        f"{prefix}.work",
        queue_options={},
        retry=Retry(attempts=3, wait=tenacity.wait_fixed(2)),  # 2 s > 1 s: on the broker
    )
    async def work(job: Job, message: Message) -> None:
        note("work", (job.n, message.attempt))
        if job.flaky and message.attempt == 1:
            raise RuntimeError(f"job {job.n} fails on its first attempt")
        note("done", job.n)

    @routes.direct(f"{prefix}.ex", "doomed", queue=f"{prefix}.doomed", retry=Retry(attempts=1))
    async def doomed(job: Job) -> None:
        note("doomed", job.n)
        raise ValueError(f"job {job.n} always fails")

    @routes.rpc(f"{service}.double")
    async def double(job: Job) -> Job:
        note("rpc", job.n)
        return Job(n=job.n * 2)

    return App([routes], name="fault-least-privilege", url=url, declare=declare)
