"""RPC: requests over a per-service queue, replies over direct reply-to."""

from __future__ import annotations

__all__: list[str] = []
