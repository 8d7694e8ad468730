"""Batch: a route's deliveries collected into lists and handled together.

``batch=Batch(size=100, wait=0.5)`` on a route decorator makes its handler take a list
(``async def h(events: list[Event], messages: list[Message])``). Deliveries are
collected until ``size`` are there, or ``wait`` seconds after the first; then the
handler runs once for the lot. Each delivery still goes through the per-message steps
of its :class:`~burrowmq.routing.pipeline.Pipeline` first (the poison check, decoding):
one that does not decode is dead-lettered alone, and the others still form the batch.

Outcomes are per message: after the handler returns every message is acked; if it
raises, every message of the batch has failed an attempt and is retried (a short wait
in process, the failed ones as a batch again; a long one parked on the broker) or
dead-lettered by the route's :class:`~burrowmq.Retry`; :class:`~burrowmq.BatchError`
fails only the messages it names. ``timeout=`` bounds each call of the handler.

A batch route's ``concurrency`` counts batches handled at once (default 1); it runs
``size * concurrency`` workers and its prefetch is raised to at least that, so that a
batch can fill. The App's middleware, being per message, does not wrap batch handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.instrument import Hooks
from burrowmq.framework.log import get_logger
from burrowmq.framework.urls import redact
from burrowmq.routing.handler import Handler
from burrowmq.routing.pipeline import NO_MESSAGE, Inbound, Settle, timed
from burrowmq.routing.retry import Retry
from burrowmq.routing.signals import BatchError, Reject

__all__ = ["MAX_PREFETCH", "Batch", "BatchCollector"]

_log = get_logger()

MAX_PREFETCH = 65535
"""AMQP carries the prefetch count in 16 bits: a batch cannot be larger."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Handle a route's messages in lists of up to ``size``.

    Args:
        size: the most messages per handler call (1 to 65,535).
        wait: seconds to wait, after the first message of a batch arrived, for the
            batch to fill; then it is handled as it is.

    Raises:
        ConfigurationError: a size or wait out of range.
    """

    size: int = 100
    wait: float = 0.5

    def __post_init__(self) -> None:
        size, wait = self.size, self.wait
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PREFETCH:
            raise ConfigurationError(
                f"Batch(size=...) takes a number of messages from 1 to {MAX_PREFETCH}, got {size!r}"
            )
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < math.inf:
            raise ConfigurationError(f"Batch(wait=...) takes seconds (0 or more), got {wait!r}")
        object.__setattr__(self, "wait", float(wait))


class _Forming:
    """One batch being collected: its items, set when full, done when handled."""

    __slots__ = ("done", "full", "items")

    def __init__(self) -> None:
        self.items: list[tuple[Inbound, Any]] = []
        self.full = asyncio.Event()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class BatchCollector:
    """Collects a route's decoded deliveries into batches and settles each message.

    The first delivery of a batch is its leader: its worker waits for the batch to
    fill (or for ``wait``), runs the handler and settles every message; the workers of
    the others wait for that. No task is created per message or per batch.

    Args:
        handler: the route's handler, inspected as a batch handler.
        batch: the batch size and wait.
        queue: the queue consumed (for metrics).
        retry: the route's effective retry policy.
        settle: the route's settle step.
        hooks: the App's instruments (``None``: none).
        timeout: seconds each handler call may take (``None``: no limit).
    """

    __slots__ = ("_batch", "_call", "_forming", "_hooks", "_name", "_queue", "_retry", "_settle")

    def __init__(
        self,
        handler: Handler,
        *,
        batch: Batch,
        queue: str,
        retry: Retry,
        settle: Settle,
        hooks: Hooks | None = None,
        timeout: float | None = None,
    ) -> None:
        self._batch = batch
        self._name = handler.name
        self._call: Callable[..., Awaitable[Any]] = (
            handler.call if timeout is None else timed(handler.call, handler.name, timeout)
        )
        self._queue = queue
        self._retry = retry
        self._settle = settle
        self._hooks = hooks
        self._forming: _Forming | None = None

    async def join(self, inbound: Inbound, value: Any) -> None:
        """Add a decoded delivery to the batch being collected; return once it is settled
        (or left to the broker)."""
        forming = self._forming
        leader = forming is None
        if forming is None:
            forming = self._forming = _Forming()
        forming.items.append((inbound, value))
        if len(forming.items) >= self._batch.size:
            self._forming = None  # closed: the next delivery starts the next batch
            forming.full.set()
        if not leader:
            await forming.done
            return
        try:
            if self._forming is forming:
                try:
                    async with asyncio.timeout(self._batch.wait):
                        await forming.full.wait()
                except TimeoutError:
                    pass
                if self._forming is forming:
                    self._forming = None
            await self._handle(forming.items)
        finally:
            if not forming.done.done():
                forming.done.set_result(None)

    async def _handle(self, items: list[tuple[Inbound, Any]]) -> None:
        """Run the handler on ``items`` until each message is acked, parked or dead-lettered."""
        retry, settle, hooks = self._retry, self._settle, self._hooks
        while items:
            values = [value for _, value in items]
            messages = [inbound.message for inbound, _ in items]
            if messages[0] is NO_MESSAGE:
                messages = []
            started = time.perf_counter()
            failures: dict[int, BaseException]
            try:
                await self._call(values, messages)
                failures = {}
            except BatchError as signal:
                failures = {
                    i: failure
                    for i, failure in signal.failures.items()
                    if isinstance(i, int) and 0 <= i < len(items)
                }
            except Exception as exc:
                failures = dict.fromkeys(range(len(items)), exc)
            seconds = time.perf_counter() - started
            for index, (inbound, _) in enumerate(items):
                if index not in failures:
                    await settle.handled(inbound, None)
                    if hooks is not None:
                        hooks.delivery_settled(self._queue, self._name, "acked", seconds)
            again: list[tuple[Inbound, Any]] = []
            pause = 0.0
            if failures:
                self._log_failure(failures, len(items))
            for index, error in failures.items():
                inbound, value = items[index]
                outcome = await self._failed(inbound, error, retry, settle)
                if outcome is None:
                    again.append((inbound, value))
                    pause = max(pause, retry.delay(inbound.attempt))
                    outcome = "retried"
                if hooks is not None:
                    hooks.delivery_settled(self._queue, self._name, outcome, seconds)
            if again and pause > 0:
                await asyncio.sleep(pause)
            for inbound, _ in again:
                inbound.attempt += 1
                if inbound.message is not NO_MESSAGE:
                    inbound.message = dataclasses.replace(inbound.message, attempt=inbound.attempt)
            items = again

    async def _failed(
        self, inbound: Inbound, exc: BaseException, retry: Retry, settle: Settle
    ) -> str | None:
        """Settle one failed message; ``None`` when it is to be retried in process."""
        if isinstance(exc, Reject):
            await settle.rejected(inbound, exc)
            return "rejected"
        attempt = inbound.attempt
        if not retry.retryable(exc) or attempt >= retry.attempts:
            await settle.failed(inbound, exc)
            return settle.FAILED
        delay = retry.delay(attempt)
        if delay > retry.broker_delay_threshold and await settle.park(inbound, delay):
            return "retried"
        return None

    def _log_failure(self, failures: dict[int, BaseException], size: int) -> None:
        first = next(iter(failures.values()))
        _log.error(
            "batch_handler_failed",
            handler=self._name,
            failed=len(failures),
            batch=size,
            error=f"{type(first).__name__}: {redact(str(first))}",
        )
