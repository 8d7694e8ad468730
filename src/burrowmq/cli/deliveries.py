"""Deliveries: one consumer's messages, taken one at a time, for commands that read a queue.

``dlq`` reads dead letters and puts back those it does not ack; ``stream`` reads a stream
from an offset. Both consume into a local queue and wait for each message with a
timeout, and close the consumer (unacked messages go back) when they are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Self

from burrowmq.framework.transport import Delivery, Subscription, Transport

__all__ = ["Deliveries"]


class Deliveries:
    """The deliveries of a consumer of ``queue``, once :meth:`start` has started it.

    An async context manager: leaving it closes the consumer's channel, and what was
    delivered and not acked goes back to the queue.

    Args:
        transport: the connection to consume on.
        queue: the queue (or stream) to read.
        timeout: how long :meth:`next` waits for a message, in seconds.
    """

    def __init__(self, transport: Transport, queue: str, *, timeout: float) -> None:
        self.transport = transport
        self.queue = queue
        self._timeout = timeout
        self._got: asyncio.Queue[Delivery] = asyncio.Queue()
        self._subscription: Subscription | None = None

    async def __aenter__(self) -> Self:
        return self

    async def start(self, *, prefetch: int, arguments: Mapping[str, Any] | None = None) -> None:
        """Start consuming, with ``prefetch`` and the consumer ``arguments``."""
        self._subscription = await self.transport.consume(
            self.queue, self._got.put_nowait, prefetch=prefetch, arguments=arguments
        )

    async def next(self) -> Delivery | None:
        """The next delivery, or ``None`` when none came within the timeout."""
        try:
            return await asyncio.wait_for(self._got.get(), self._timeout)
        except TimeoutError:
            return None

    async def __aexit__(self, *exc: object) -> None:
        if self._subscription is not None:
            await self._subscription.close()
