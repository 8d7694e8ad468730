"""One instance of a service with an ``every=1s`` schedule, for the leadership tests.

Usage: ``python -m tests.integration.schedule_worker URL LOG``. Each tick appends
``start <pid> <time>`` when it begins and ``end <pid> <time>`` when it ends (after 0.2 s)
to LOG; SIGTERM stops it gracefully.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta

from burrowmq import App, Router

router = Router()
URL, LOG = sys.argv[1], sys.argv[2]


def _note(what: str) -> None:
    with open(LOG, "a") as log:  # one short line per write: appends do not interleave
        log.write(f"{what} {os.getpid()} {time.time():.6f}\n")


@router.schedule(every=timedelta(seconds=1))
async def tick() -> None:
    """Take a fifth of a second, noting start and end."""
    _note("start")
    await asyncio.sleep(0.2)
    _note("end")


if __name__ == "__main__":
    App([router], url=URL, name="sched-svc", shutdown_timeout=5.0, connect_timeout=15.0).run()
