"""A named stream consumer that ``test_streams`` runs in a child process and kills.

Configured through the environment: ``BURROWMQ_STREAM`` (the stream),
``BURROWMQ_STREAM_CONSUMER`` (the consumer's name) and ``BURROWMQ_STREAM_RECORD`` (a file
it appends each handled offset to, one per line, unbuffered, before the delivery is
settled).
"""

from __future__ import annotations

import os

from burrowmq import App, Message, Router

router = Router()
_record = os.open(
    os.environ.get("BURROWMQ_STREAM_RECORD", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT
)


@router.stream(
    os.environ.get("BURROWMQ_STREAM", "streams.events"),
    consumer=os.environ.get("BURROWMQ_STREAM_CONSUMER", "streams-worker"),
    offset="first",
    prefetch=256,
    concurrency=16,
)
async def project(event: dict[str, int], message: Message) -> None:
    """Record the offset (written before the settle, so a kill cannot lose a record)."""
    os.write(_record, f"{message.offset}\n".encode())


app = App([router], name="stream-worker", shutdown_timeout=5.0, connect_timeout=15.0)
