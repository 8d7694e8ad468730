"""How a message route settles its deliveries: ack, delayed retry or dead-letter.

The settle step of the pipeline for every route that is not RPC. A delivery is acked
only after its handler returned, or after its copy was confirmed where it now waits: the
dead-letter queue, or the delay ladder that returns it to the work queue later
(:mod:`burrowmq.routing.delay`). Copies are
built from checked headers (what AMQP cannot carry converted, ``x-death`` dropped) and
published ``mandatory``: a copy that cannot be placed (unencodable, unroutable, its
queue deleted) leaves the original unacked on the broker, returned after a pause that
grows with each failure, and logged at error level. Never acked into nothing, never a
hot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from typing import Any

from burrowmq.exceptions import BurrowError, DecodeError, TooManyRedeliveries
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.framework.urls import redact
from burrowmq.routing.dead_letter import (
    HEADER_EXCEPTION_MESSAGE,
    HEADER_EXCEPTION_TYPE,
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_QUEUE,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_RETRY_COUNT,
    HEADER_UNDECODABLE,
)
from burrowmq.routing.delay import (
    HEADER_DELAY_EXCHANGE,
    HEADER_DELAY_ROUTING_KEY,
    OUTBOX,
    delay_seconds,
    delivery_binding,
    entry,
    ladder_topology,
    routable,
)
from burrowmq.routing.pipeline import Inbound
from burrowmq.routing.signals import Reject
from burrowmq.topology.apply import declare_topology

__all__ = ["MessageSettle", "dead_letter_headers", "reason_of"]

_log = get_logger()
_MAX_REASON = 1000
_FIRST_PAUSE = 1.0
_MAX_PAUSE = 60.0
_FAILURES_KEPT = 10_000


def reason_of(exc: BaseException) -> str:
    """What a dead-letter copy records of why: a signal's reason or the error's text,
    with credentials masked and cut to 1,000 characters."""
    signal = isinstance(exc, Reject | DecodeError | TooManyRedeliveries)
    reason = exc.reason if signal else str(exc)  # type: ignore[attr-defined]
    return redact(reason)[:_MAX_REASON]


def dead_letter_headers(inbound: Inbound, exc: BaseException) -> tuple[dict[str, Any], str]:
    """The headers of a dead-letter copy of ``inbound`` failed by ``exc``, and the reason.

    The delivery's own headers, with ``x-exception-type``, ``x-exception-message``,
    ``x-original-exchange``, ``-routing-key``, ``-queue``, ``x-retry-count`` and, when
    some properties did not decode, ``x-undecodable-properties``.
    """
    delivery = inbound.delivery
    headers = dict(delivery.properties.headers)
    reason = reason_of(exc)
    headers[HEADER_EXCEPTION_TYPE] = type(exc).__name__
    headers[HEADER_EXCEPTION_MESSAGE] = reason
    headers[HEADER_ORIGINAL_EXCHANGE] = inbound.exchange
    headers[HEADER_ORIGINAL_ROUTING_KEY] = inbound.routing_key
    headers[HEADER_ORIGINAL_QUEUE] = inbound.queue
    headers[HEADER_RETRY_COUNT] = inbound.attempt - 1
    if delivery.undecodable:
        headers[HEADER_UNDECODABLE] = dict(delivery.undecodable)
    return headers, reason


class MessageSettle:
    """Settles the deliveries of one message route.

    Args:
        transport: where dead-letter and delay copies are published.
        builder: builds those copies.
        dead_letter_exchange: where failed and invalid messages go; ``None`` nacks them
            instead (the queue's own dead-letter settings apply, if any).
        queue_type: the work queue's type (the delay ladder is of quorum queues, as
            durable as either).
        declare: declare the delay ladder when first used (``False``: it must exist, as
            ``topology apply`` declares it for an App that declares nothing).
    """

    FAILED = "dead_lettered"
    ANSWERED = False

    __slots__ = (
        "_builder",
        "_declare",
        "_declared",
        "_dlx",
        "_failures",
        "_queue_type",
        "_transport",
    )

    def __init__(
        self,
        transport: Transport,
        builder: MessageBuilder,
        *,
        dead_letter_exchange: str | None,
        queue_type: str = "classic",
        declare: bool = True,
    ) -> None:
        self._declare = declare
        self._transport = transport
        self._builder = builder
        self._dlx = dead_letter_exchange
        self._queue_type = queue_type
        self._declared: set[str] = set()  # queues whose way back from the ladder is declared
        self._failures: OrderedDict[str, int] = OrderedDict()  # message -> failed placements

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
        """Send the message down the delay ladder, back to its queue after ``delay``."""
        seconds = delay_seconds(min(delay, 2.0**28 - 1))
        delivery = inbound.delivery
        headers = dict(delivery.properties.headers)
        headers[HEADER_RETRY_COUNT] = inbound.attempt
        headers[HEADER_ORIGINAL_EXCHANGE] = inbound.exchange
        headers[HEADER_ORIGINAL_ROUTING_KEY] = inbound.routing_key
        if routable(inbound.queue):
            exchange, key = entry(seconds, inbound.queue)
        else:  # a name no binding can spell: by the outbox, like a delayed publish
            headers[HEADER_DELAY_EXCHANGE] = ""
            headers[HEADER_DELAY_ROUTING_KEY] = inbound.queue
            exchange, key = entry(seconds, OUTBOX)
        copy = self._builder.copy(delivery.properties, headers=headers, persistent=True)
        try:
            await self._declare_ladder(inbound.queue)
            await self._transport.publish(exchange, key, delivery.body, copy, mandatory=True)
        except BurrowError as error:
            await self._leave(delivery, "retry_delay_failed", error, delay_exchange=exchange)
            return True
        self._placed(delivery)
        await delivery.ack()
        _log.info("message_delayed", delay_exchange=exchange, delay=round(delay, 3))
        return True

    async def _declare_ladder(self, queue: str) -> None:
        # Once per queue and settle step: the App declared it at start when the route's
        # policy foresaw broker waits, and declares it again on every reconnection.
        if not self._declare or queue in self._declared:
            return  # (not declaring: a missing ladder makes the mandatory publish fail)
        topology = ladder_topology()
        if routable(queue):
            topology.add(delivery_binding(queue), origin="delays")
        await declare_topology(self._transport, topology)
        self._declared.add(queue)

    async def _dead_letter(self, inbound: Inbound, exc: BaseException) -> None:
        """Publish a confirmed copy to the dead-letter exchange, then ack the original."""
        delivery = inbound.delivery
        if self._dlx is None:
            # Dead-lettering is off for this route: the broker applies the queue's own
            # dead-letter settings, if any, else drops the message.
            await delivery.nack(requeue=False)
            _log.warning("message_dropped", reason="dead-lettering is off for this route")
            return
        headers, reason = dead_letter_headers(inbound, exc)
        copy = self._builder.copy(delivery.properties, headers=headers, persistent=True)
        try:
            await self._transport.publish(
                self._dlx, inbound.routing_key, delivery.body, copy, mandatory=True
            )
        except BurrowError as error:
            await self._leave(delivery, "dead_letter_failed", error, exchange=self._dlx)
            return
        self._placed(delivery)
        await delivery.ack()
        _log.info(
            "message_dead_lettered",
            exchange=self._dlx,
            exception_type=type(exc).__name__,
            reason=reason[:200],
        )

    def _placed(self, delivery: Delivery) -> None:
        key = delivery.properties.message_id
        if key is not None:
            self._failures.pop(key, None)

    async def _leave(
        self, delivery: Delivery, event: str, error: BurrowError, **where: Any
    ) -> None:
        """Leave a delivery whose copy could not be placed on the broker, unacked.

        It is returned to its queue after a pause that doubles with each failure of the
        same message (1 s, 2 s, ... up to a minute, with jitter), so that a broken
        dead-letter path neither loses it nor spins.
        """
        key = delivery.properties.message_id or f"tag:{delivery.delivery_tag}"
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        self._failures.move_to_end(key)
        while len(self._failures) > _FAILURES_KEPT:
            self._failures.popitem(last=False)
        pause = min(_MAX_PAUSE, _FIRST_PAUSE * 2 ** (failures - 1))
        pause *= random.uniform(0.8, 1.2)
        _log.error(
            event,
            error=str(error),
            failures=failures,
            outcome=f"left on the broker; returned to its queue in {pause:.1f}s",
            **where,
        )
        await asyncio.sleep(pause)
        with contextlib.suppress(Exception):
            await delivery.nack(requeue=True)
