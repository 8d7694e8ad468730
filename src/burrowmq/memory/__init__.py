"""The in-memory transport: an in-process broker with RabbitMQ's semantics, for tests.

It depends on :mod:`burrowmq.framework` alone; users reach it through
:mod:`burrowmq.testing` and ``App(url="memory://...")``.
"""

from __future__ import annotations

from burrowmq.memory.broker import MemoryBroker
from burrowmq.memory.transport import MemoryTransport

__all__ = ["MemoryBroker", "MemoryTransport"]
