"""Workloads for fault tests: publishers that retry what was not confirmed, tallies, waits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest

from burrowmq import App, ConnectionLost, PublishError

__all__ = ["PublishReport", "Tally", "drain", "publish_all", "queue_depth", "wait_for"]


async def wait_for(check: Callable[[], bool], timeout: float, what: str = "condition") -> float:
    """Wait until ``check()`` holds; return the seconds it took; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > timeout:
            pytest.fail(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def queue_depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    """Messages ready in a queue (passive declare)."""
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def drain(
    channel: aio_pika.abc.AbstractChannel, name: str
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take (no-ack) every message now in a queue."""
    queue = await channel.declare_queue(name, passive=True)
    out = []
    while True:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            return out
        out.append(message)


@dataclass
class Tally:
    """What a handler saw: every key, in order, with duplicates counted."""

    seen: Counter[Any] = field(default_factory=Counter)
    event: asyncio.Event = field(default_factory=asyncio.Event)
    expect: int = 0

    def add(self, key: Any) -> None:
        """Record one handling of ``key``."""
        self.seen[key] += 1
        if self.expect and len(self.seen) >= self.expect:
            self.event.set()

    @property
    def unique(self) -> int:
        """Distinct keys handled."""
        return len(self.seen)

    @property
    def duplicates(self) -> int:
        """Handlings beyond the first of each key."""
        return sum(self.seen.values()) - len(self.seen)


@dataclass
class PublishReport:
    """The outcome of :func:`publish_all`."""

    attempts: int = 0
    confirmed: set[int] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def raised(self) -> int:
        """Publishes that raised (each was retried until confirmed)."""
        return sum(self.errors.values())


async def publish_all(
    app: App,
    keys: Iterable[int],
    body: Callable[[int], Any],
    *,
    routing_key: str,
    exchange: str = "",
    concurrency: int = 64,
    on_confirmed: Callable[[int], Awaitable[None]] | None = None,
    give_up_after: float = 60.0,
) -> PublishReport:
    """Publish one message per key, ``concurrency`` at a time, each until confirmed.

    A publish that raises ``ConnectionLost`` or ``PublishError`` (the caller's choice in
    burrowmq) is counted and sent again with the same message id, so an unconfirmed
    message that did reach the queue shows up as a duplicate, never as a loss.
    """
    report = PublishReport()
    pending = list(keys)
    pending.reverse()
    started = time.monotonic()

    async def one(key: int) -> None:
        deadline = time.monotonic() + give_up_after
        while True:
            report.attempts += 1
            try:
                await app.publish(
                    exchange, body(key), routing_key=routing_key, message_id=f"m{key}"
                )
            except (ConnectionLost, PublishError) as exc:
                report.errors[type(exc).__name__] += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            report.confirmed.add(key)
            if on_confirmed is not None:
                await on_confirmed(key)
            return

    async def lane() -> None:
        while pending:
            await one(pending.pop())

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    report.seconds = time.monotonic() - started
    return report
