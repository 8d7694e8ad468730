"""How a message route settles its deliveries: ack, delayed retry or dead-letter.

The settle step of the pipeline for every route that is not RPC. A delivery is acked
only after its handler returned, or after its copy was confirmed where it now waits: the
dead-letter queue, or a delay queue that returns it to the work queue later. A copy that
cannot be placed leaves the original unacked, requeued after a pause, never acked into
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from burrowmq.exceptions import BurrowError, DecodeError, TooManyRedeliveries
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.routing.dead_letter import (
    HEADER_EXCEPTION_MESSAGE,
    HEADER_EXCEPTION_TYPE,
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_QUEUE,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_RETRY_COUNT,
    delay_queue,
)
from burrowmq.routing.pipeline import Inbound
from burrowmq.routing.signals import Reject

__all__ = ["MessageSettle"]

_log = get_logger()
_MAX_REASON = 1000
_RELEASE_PAUSE = 1.0


class MessageSettle:
    """Settles the deliveries of one message route.

    Args:
        transport: where dead-letter and delay copies are published.
        builder: builds those copies.
        dead_letter_exchange: where failed and invalid messages go; ``None`` nacks them
            instead (the queue's own dead-letter settings apply, if any).
    """

    __slots__ = ("_builder", "_declared", "_dlx", "_transport")

    def __init__(
        self, transport: Transport, builder: MessageBuilder, *, dead_letter_exchange: str | None
    ) -> None:
        self._transport = transport
        self._builder = builder
        self._dlx = dead_letter_exchange
        self._declared: set[str] = set()

    async def admit(self, inbound: Inbound) -> bool:
        return True

    async def handled(self, inbound: Inbound, result: Any) -> None:
        if not await inbound.delivery.ack():
            _log.warning("ack_lost", reason="channel closed; the broker will redeliver")

    async def invalid(self, inbound: Inbound, error: DecodeError) -> None:
        await self._dead_letter(inbound, error)

    async def rejected(self, inbound: Inbound, signal: Reject) -> None:
        await self._dead_letter(inbound, signal)

    async def failed(self, inbound: Inbound, error: BaseException) -> None:
        await self._dead_letter(inbound, error)

    def can_retry(self, inbound: Inbound) -> bool:
        return True

    async def park(self, inbound: Inbound, delay: float) -> bool:
        """Park the message in a TTL queue that dead-letters it back to its queue."""
        ms = max(1, round(delay * 1000))
        name = delay_queue(inbound.queue, ms)
        delivery = inbound.delivery
        try:
            if name not in self._declared:
                await self._transport.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-queue-type": "classic",
                        "x-message-ttl": ms,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": inbound.queue,
                    },
                )
                self._declared.add(name)
            headers = dict(delivery.properties.headers)
            headers[HEADER_RETRY_COUNT] = inbound.attempt
            headers[HEADER_ORIGINAL_EXCHANGE] = inbound.exchange
            headers[HEADER_ORIGINAL_ROUTING_KEY] = inbound.routing_key
            copy = self._builder.copy(delivery.properties, headers=headers)
            await self._transport.publish("", name, delivery.body, copy, mandatory=True)
        except BurrowError as error:
            _log.error("retry_delay_failed", queue=name, error=str(error))
            await _release_later(delivery)
            return True
        await delivery.ack()
        _log.info("message_delayed", delay_queue=name, delay=delay)
        return True

    async def _dead_letter(self, inbound: Inbound, exc: BaseException) -> None:
        """Publish a confirmed copy to the dead-letter exchange, then ack the original."""
        delivery = inbound.delivery
        if self._dlx is None:
            # Dead-lettering is off for this route: the broker applies the queue's own
            # dead-letter settings, if any, else drops the message.
            await delivery.nack(requeue=False)
            _log.warning("message_dropped", reason="dead-lettering is off for this route")
            return
        props = delivery.properties
        headers = dict(props.headers)
        reason = (
            exc.reason if isinstance(exc, Reject | DecodeError | TooManyRedeliveries) else str(exc)
        )
        headers[HEADER_EXCEPTION_TYPE] = type(exc).__name__
        headers[HEADER_EXCEPTION_MESSAGE] = reason[:_MAX_REASON]
        headers[HEADER_ORIGINAL_EXCHANGE] = inbound.exchange
        headers[HEADER_ORIGINAL_ROUTING_KEY] = inbound.routing_key
        headers[HEADER_ORIGINAL_QUEUE] = inbound.queue
        headers[HEADER_RETRY_COUNT] = inbound.attempt - 1
        copy = self._builder.copy(props, headers=headers, persistent=True)
        try:
            await self._transport.publish(self._dlx, inbound.routing_key, delivery.body, copy)
        except BurrowError as error:
            _log.error(
                "dead_letter_failed",
                exchange=self._dlx,
                error=str(error),
                outcome="left unacked; the broker will redeliver",
            )
            await _release_later(delivery)
            return
        await delivery.ack()
        _log.info(
            "message_dead_lettered",
            exchange=self._dlx,
            exception_type=type(exc).__name__,
            reason=reason[:200],
        )


async def _release_later(delivery: Delivery) -> None:
    # Requeue after a pause, so that a broken dead-letter path does not spin hot.
    await asyncio.sleep(_RELEASE_PAUSE)
    with contextlib.suppress(Exception):
        await delivery.nack(requeue=True)
