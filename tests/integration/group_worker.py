"""A consumer-group member that ``test_stream_groups`` runs in a child process and kills.

Configured through the environment: ``BURROWMQ_GROUP_STREAM`` (the super stream),
``BURROWMQ_GROUP_PARTITIONS``, ``BURROWMQ_GROUP_CONSUMER`` (the group's name) and
``BURROWMQ_GROUP_RECORD`` (a file it appends ``time partition offset key n`` to for each
message handled, unbuffered, before the delivery is settled).
"""

from __future__ import annotations

import os
import time

from burrowmq import App, Message, Router

router = Router()
_record = os.open(
    os.environ.get("BURROWMQ_GROUP_RECORD", os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT
)


@router.stream(
    os.environ.get("BURROWMQ_GROUP_STREAM", "groups.orders"),
    consumer=os.environ.get("BURROWMQ_GROUP_CONSUMER", "groups-worker"),
    partitions=int(os.environ.get("BURROWMQ_GROUP_PARTITIONS", "6")),
    offset="first",
    prefetch=64,
)
async def bill(order: dict[str, int | str], message: Message) -> None:
    """Record what was handled (written before the settle: a kill cannot lose a record)."""
    line = f"{time.time()} {message.routing_key} {message.offset} {order['key']} {order['n']}\n"
    os.write(_record, line.encode())


app = App([router], name="group-worker", shutdown_timeout=5.0, connect_timeout=15.0)
