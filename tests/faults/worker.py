"""A consumer service the fault tests run in a child process (``burrowmq run``) and kill.

Configured through the environment: ``BURROWMQ_FAULT_QUEUE`` (the quorum queue it
consumes), ``BURROWMQ_FAULT_RECORD`` (a file it appends each handled job number to, one
per line, before the ack), ``BURROWMQ_FAULT_MAX_REDELIVERIES`` and
``BURROWMQ_FAULT_DELAY`` (seconds each job takes). A job with ``crash`` set kills the
process on the spot, as a segfault or an out-of-memory kill would.
"""

from __future__ import annotations

import asyncio
import os
import signal

from pydantic import BaseModel

from burrowmq import App, Retry, Router


class Job(BaseModel):
    """One unit of work."""

    n: int
    crash: bool = False


router = Router()
_record_path = os.environ.get("BURROWMQ_FAULT_RECORD", os.devnull)
_delay = float(os.environ.get("BURROWMQ_FAULT_DELAY", "0"))
_record = open(_record_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process


@router.consume(
    os.environ.get("BURROWMQ_FAULT_QUEUE", "faults.jobs"),
    queue_options={},
    retry=Retry(attempts=1),
)
async def work(job: Job) -> None:
    """Do the job (sleep), record it, or die trying."""
    if job.crash:
        os.kill(os.getpid(), signal.SIGKILL)
    if _delay:
        await asyncio.sleep(_delay)
    _record.write(f"{job.n}\n")


app = App(
    [router],
    name="fault-worker",
    prefetch=32,
    concurrency=8,
    max_redeliveries=int(os.environ.get("BURROWMQ_FAULT_MAX_REDELIVERIES", "10")),
    shutdown_timeout=5.0,
)
