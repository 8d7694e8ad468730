"""The last hop of a delayed publish: from the delay outbox on to its destination.

The broker dead-letters only to an exchange, keeping the routing key, so a message
delayed on its way to an exchange and routing key of the caller's ends in the outbox
(:data:`~burrowmq.routing.delay.OUTBOX`) with its destination in two headers. A
:class:`Forwarder` runs in every App that uses delays; the instances compete for the
outbox. Each message is published to its destination, ``mandatory`` and confirmed,
then acked: a crash in between repeats the publish (at least once), never loses it.

What can fail, and what becomes of the message:

- **For now** (the connection lost, a broker alarm, a negative confirm): it stays on
  the broker, returned to the outbox after a pause that grows per failure (1 s ... 60 s).
- **For good**: no destination headers, or unfit ones (not strings AMQP can carry); a
  destination inside the delay ladder itself (forwarding there would loop) or RabbitMQ's
  direct reply-to (a delayed message never poses as an RPC reply); an exchange that does
  not exist; no queue bound for the routing key; a copy that cannot be encoded. It is
  *parked* in :data:`~burrowmq.routing.delay.OUTBOX_DLQ`, confirmed, with the reason in
  ``x-exception-type`` / ``x-exception-message`` and the destination in
  ``x-original-exchange`` / ``-routing-key`` (so ``burrowmq dlq replay
  burrowmq.delay.outbox`` can send it on once the destination exists), then acked.
  Should parking fail too, the message stays in the outbox as for a failure for now.
  A message is never dropped.

Trust: whoever may publish to the ladder's exchanges can have the forwarder publish
wherever the forwarder's own RabbitMQ user may write, as with any relay. Grant write
permission on ``burrowmq\\.delay\\..*`` only to users trusted that far.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

from burrowmq.exceptions import (
    BurrowError,
    ConfigurationError,
    EncodeError,
    PublishError,
    Unroutable,
)
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Subscription, Transport
from burrowmq.framework.urls import redact
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO
from burrowmq.routing.dead_letter import (
    HEADER_EXCEPTION_MESSAGE,
    HEADER_EXCEPTION_TYPE,
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_QUEUE,
    HEADER_ORIGINAL_ROUTING_KEY,
    original,
)
from burrowmq.routing.delay import (
    HEADER_DELAY_EXCHANGE,
    HEADER_DELAY_ROUTING_KEY,
    OUTBOX,
    OUTBOX_DLQ,
    PREFIX,
    entry,
    ladder_topology,
)
from burrowmq.topology.apply import declare_topology

__all__ = ["Delays", "Forwarder", "refusal"]

_log = get_logger()
_PREFETCH = 64
_MAX_REASON = 1000
_OURS = frozenset(
    (
        HEADER_EXCEPTION_TYPE,
        HEADER_EXCEPTION_MESSAGE,
        HEADER_ORIGINAL_QUEUE,
        HEADER_ORIGINAL_EXCHANGE,
        HEADER_ORIGINAL_ROUTING_KEY,
    )
)
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
        for name in (HEADER_DELAY_EXCHANGE, HEADER_DELAY_ROUTING_KEY, *_DEATH_HEADERS):
            headers.pop(name, None)
        if "\0" in (exchange, routing_key):
            # Only a forged or foreign message lacks them: nowhere to send it.
            await self._park(
                delivery,
                headers,
                "DelayDestinationMissing",
                f"no fit {HEADER_DELAY_EXCHANGE} and {HEADER_DELAY_ROUTING_KEY} headers "
                "(strings of at most 255 bytes)",
            )
            return
        refused = refusal(exchange, routing_key)
        if refused is not None:
            await self._park(
                delivery, headers, "DelayDestinationRefused", refused, exchange, routing_key
            )
            return
        try:
            copy = self._builder.copy(delivery.properties, headers=headers)
            await self._transport.publish(
                exchange, routing_key, delivery.body, copy, mandatory=True
            )
        except BurrowError as error:
            if _for_good(error):
                await self._park(
                    delivery,
                    headers,
                    type(error).__name__,
                    str(error),
                    exchange,
                    routing_key,
                )
            else:
                await self._leave(delivery, "delay_forward_failed", error, exchange, routing_key)
            return
        except Exception as error:  # a bug of ours must not loop a message: park it
            await self._park(
                delivery, headers, type(error).__name__, str(error), exchange, routing_key
            )
            return
        self._failures = 0
        await delivery.ack()
        _log.debug("delay_forwarded", exchange=exchange, routing_key=routing_key)

    async def _park(
        self,
        delivery: Delivery,
        headers: dict[str, Any],
        kind: str,
        reason: str,
        exchange: str | None = None,
        routing_key: str | None = None,
    ) -> None:
        """Park a message that cannot be forwarded in the outbox's DLQ, then ack it."""
        reason = redact(reason)[:_MAX_REASON]
        parked = dict(headers)
        parked[HEADER_EXCEPTION_TYPE] = kind
        parked[HEADER_EXCEPTION_MESSAGE] = reason
        parked[HEADER_ORIGINAL_QUEUE] = OUTBOX
        if exchange is not None and routing_key is not None:
            parked[HEADER_ORIGINAL_EXCHANGE] = exchange
            parked[HEADER_ORIGINAL_ROUTING_KEY] = routing_key
        try:
            try:
                copy = self._builder.copy(delivery.properties, headers=parked, persistent=True)
            except BurrowError:
                # Headers that cannot be carried: park with burrowmq's own only.
                kept = {k: v for k, v in parked.items() if k in _OURS}
                copy = self._builder.copy(delivery.properties, headers=kept, persistent=True)
            await self._transport.publish("", OUTBOX_DLQ, delivery.body, copy, mandatory=True)
        except BurrowError as error:
            await self._leave(delivery, "delay_park_failed", error, exchange, routing_key)
            return
        await delivery.ack()
        _log.error(
            "delay_message_parked",
            queue=OUTBOX_DLQ,
            exception_type=kind,
            reason=reason[:200],
            exchange=exchange,
            routing_key=routing_key,
            message_id=delivery.properties.message_id,
        )

    async def _leave(
        self,
        delivery: Delivery,
        event: str,
        error: BaseException,
        exchange: str | None,
        routing_key: str | None,
    ) -> None:
        """Leave the message in the outbox, returned after a pause that grows per failure."""
        self._failures += 1
        pause = min(60.0, 2.0 ** min(self._failures - 1, 6)) * random.uniform(0.8, 1.2)
        _log.error(
            event,
            exchange=exchange,
            routing_key=routing_key,
            error=redact(str(error)),
            outcome=f"left in the outbox; returned in {pause:.1f}s",
        )
        await asyncio.sleep(pause)
        with contextlib.suppress(Exception):
            await delivery.nack(requeue=True)


def refusal(exchange: str, routing_key: str) -> str | None:
    """Why the forwarder refuses a destination, or ``None`` when it forwards there."""
    if exchange.startswith(f"{PREFIX}."):
        return f"exchange {exchange!r} is the delay ladder's own: forwarding would loop"
    if exchange == "" and routing_key.startswith(f"{PREFIX}."):
        return f"queue {routing_key!r} is the delay ladder's own: forwarding would loop"
    if exchange == "" and routing_key.startswith(DIRECT_REPLY_TO):
        return "a delayed message is never forwarded as an RPC reply (direct reply-to)"
    return None


def _for_good(error: BaseException) -> bool:
    """Whether a failed forward will fail again however long it waits.

    A missing exchange (a plain :class:`PublishError`), no queue bound, a copy that cannot
    be encoded: for good. The connection lost, an alarm, a negative confirm: for now.
    """
    if isinstance(error, Unroutable | EncodeError | ConfigurationError):
        return True
    return type(error) is PublishError


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
