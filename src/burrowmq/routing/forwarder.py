"""The last hop of a delayed publish: from the delay outbox on to its destination.

The broker dead-letters only to an exchange, keeping the routing key, so a message
delayed on its way to an exchange and routing key of the caller's ends in the outbox
(:data:`~burrowmq.routing.delay.OUTBOX`) with its destination in two headers. A
:class:`Forwarder` runs in every App that uses delays; the instances compete for the
outbox. Each message is published to its destination, confirmed, then acked: a crash
in between repeats the publish (at least once), never loses it. A publish that fails
leaves the message on the broker, returned after a pause that grows per failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

from burrowmq.exceptions import BurrowError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Subscription, Transport
from burrowmq.routing.dead_letter import original
from burrowmq.routing.delay import (
    HEADER_DELAY_EXCHANGE,
    HEADER_DELAY_ROUTING_KEY,
    OUTBOX,
    entry,
    ladder_topology,
)
from burrowmq.topology.apply import declare_topology

__all__ = ["Delays", "Forwarder"]

_log = get_logger()
_PREFETCH = 64
_DEATH_HEADERS = tuple(
    f"x-{which}-death-{what}"
    for which in ("first", "last")
    for what in ("exchange", "queue", "reason")
)


class Forwarder:
    """Consumes the delay outbox and publishes each message on to its destination.

    Args:
        transport: where the outbox is and where the messages go.
        builder: makes the forwarded copies (burrowmq's delay headers and ``x-death``
            dropped, everything else kept).
    """

    def __init__(self, transport: Transport, builder: MessageBuilder) -> None:
        self._transport = transport
        self._builder = builder
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures = 0

    @property
    def running(self) -> bool:
        """Whether it consumes the outbox."""
        return self._subscription is not None

    async def start(self) -> None:
        """Start consuming the outbox (it must exist)."""
        if self._subscription is None:
            self._subscription = await self._transport.consume(
                OUTBOX, self._received, prefetch=_PREFETCH
            )

    async def stop(self) -> None:
        """Stop consuming; what was not forwarded yet stays in the outbox."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(BurrowError):
                await subscription.cancel()
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if subscription is not None:
            with contextlib.suppress(BurrowError):
                await subscription.close()

    def _received(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(
            self._forward(delivery), name="burrowmq-delay-forward"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, delivery: Delivery) -> None:
        headers = dict(delivery.properties.headers)
        exchange = original(headers, HEADER_DELAY_EXCHANGE, "\0")
        routing_key = original(headers, HEADER_DELAY_ROUTING_KEY, "\0")
        if "\0" in (exchange, routing_key):
            # Only a forged or foreign message lacks them: nowhere to send it.
            _log.error("delay_destination_missing", message_id=delivery.properties.message_id)
            await delivery.nack(requeue=False)
            return
        for name in (HEADER_DELAY_EXCHANGE, HEADER_DELAY_ROUTING_KEY, *_DEATH_HEADERS):
            headers.pop(name, None)
        copy = self._builder.copy(delivery.properties, headers=headers)
        try:
            await self._transport.publish(exchange, routing_key, delivery.body, copy)
        except BurrowError as error:
            self._failures += 1
            pause = min(60.0, 2.0 ** min(self._failures - 1, 6)) * random.uniform(0.8, 1.2)
            _log.error(
                "delay_forward_failed",
                exchange=exchange,
                routing_key=routing_key,
                error=str(error),
                outcome=f"left in the outbox; returned in {pause:.1f}s",
            )
            await asyncio.sleep(pause)
            with contextlib.suppress(Exception):
                await delivery.nack(requeue=True)
            return
        self._failures = 0
        await delivery.ack()
        _log.debug("delay_forwarded", exchange=exchange, routing_key=routing_key)


class Delays:
    """What an App needs for delayed publishes: the ladder declared, a forwarder running.

    Args:
        transport: the App's transport.
        builder: the App's message builder.
        declare: declare the ladder when first used (``False``: it must exist).
    """

    def __init__(self, transport: Transport, builder: MessageBuilder, *, declare: bool) -> None:
        self._transport = transport
        self._declare = declare
        self._declared = False
        self._lock = asyncio.Lock()
        self.forwarder = Forwarder(transport, builder)

    async def start(self) -> None:
        """Start forwarding from the outbox (the ladder was declared with the topology)."""
        self._declared = True
        await self.forwarder.start()

    async def stop(self) -> None:
        """Stop forwarding."""
        await self.forwarder.stop()

    async def address(
        self, exchange: str, routing_key: str, headers: Mapping[str, Any] | None, seconds: int
    ) -> tuple[str, str, dict[str, Any]]:
        """Where to publish a message due at ``exchange``/``routing_key`` in ``seconds``.

        Declares the ladder on first use, and starts this App's forwarder, so that a
        publishing App also delivers what it delayed.

        Returns:
            The ladder's entry exchange, the routing key and the headers to publish with.
        """
        async with self._lock:
            if not self._declared:
                if self._declare:
                    await declare_topology(self._transport, ladder_topology())
                self._declared = True
            await self.forwarder.start()
        entry_exchange, key = entry(seconds, OUTBOX)
        carried = dict(headers or {})
        carried[HEADER_DELAY_EXCHANGE] = exchange
        carried[HEADER_DELAY_ROUTING_KEY] = routing_key
        return entry_exchange, key, carried
