"""Fanout exchange: every running instance receives every message (broadcast).

Without ``queue=``, each instance gets its own exclusive queue. Run two with
``burrowmq run examples.fanout:app`` and both drop the key.
"""

from __future__ import annotations

import structlog

from burrowmq import App, Router
from examples.models import Invalidate

router = Router()
log = structlog.get_logger("examples.cache")
cache: dict[str, str] = {"user:1": "Ada", "user:2": "Grace"}


@router.fanout("cache.invalidate")
async def invalidate(note: Invalidate) -> None:
    """Drop the key from this instance's cache."""
    cache.pop(note.key, None)
    log.info("invalidated", key=note.key)


app = App([router], name="cache")
