"""Dispatch: deliveries of one route to its handler, settled only after the outcome is safe.

A :class:`Consumer` owns one subscription and a fixed pool of worker tasks (its
concurrency); deliveries wait in a local buffer bounded by the prefetch. No task is
created per message. A delivery is acked only after its handler returned, or after its
dead-letter copy (or delayed retry copy) was confirmed by the broker. Anything else —
a crash, a cancelled handler, a lost connection — leaves it unacked, and the broker
delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import structlog

from burrowmq.exceptions import BurrowError, DecodeError
from burrowmq.framework.log import get_logger
from burrowmq.framework.message import Message
from burrowmq.framework.middleware import Middleware, compose
from burrowmq.framework.transport import Delivery, Subscription, Transport
from burrowmq.routing.redelivery import TooManyRedeliveries, delivery_count
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import Route
from burrowmq.routing.signals import Reject

__all__ = [
    "HEADER_EXCEPTION_MESSAGE",
    "HEADER_EXCEPTION_TYPE",
    "HEADER_ORIGINAL_EXCHANGE",
    "HEADER_ORIGINAL_ROUTING_KEY",
    "HEADER_RETRY_COUNT",
    "NO_MESSAGE",
    "Consumer",
    "message_of",
]

HEADER_RETRY_COUNT = "x-retry-count"
HEADER_EXCEPTION_TYPE = "x-exception-type"
HEADER_EXCEPTION_MESSAGE = "x-exception-message"
HEADER_ORIGINAL_EXCHANGE = "x-original-exchange"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"
HEADER_ORIGINAL_QUEUE = "x-original-queue"

_log = get_logger()
_bind = structlog.contextvars.bind_contextvars
_reset = structlog.contextvars.reset_contextvars
_MAX_REASON = 1000
_STOP = None


def _retry_count(headers: dict[str, Any]) -> int:
    value = headers.get(HEADER_RETRY_COUNT, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Consumer:
    """Runs one route: consumes its queue and settles every delivery.

    Args:
        route: the route.
        transport: the connection to consume and publish (dead letters, retries) on.
        queue: the queue name (resolved for per-instance queues).
        retry: the effective retry policy.
        prefetch: deliveries the broker may send ahead.
        concurrency: handlers running at once (worker tasks).
        dead_letter_exchange: where exhausted and invalid messages go, or ``None``.
        middleware: wrapped around each handler call, first outermost (composed once).
        max_redeliveries: a redelivery whose broker delivery count (quorum queues'
            ``x-delivery-count``) exceeds this is dead-lettered unhandled: it kept
            crashing the consumer; ``None`` turns the check off.
    """

    def __init__(
        self,
        route: Route,
        *,
        transport: Transport,
        queue: str,
        retry: Retry,
        prefetch: int,
        concurrency: int,
        dead_letter_exchange: str | None,
        middleware: Sequence[Middleware] = (),
        max_redeliveries: int | None = None,
    ) -> None:
        self.route = route
        self.queue = queue
        self._transport = transport
        self._retry = retry
        self._prefetch = max(prefetch, concurrency)
        self._concurrency = concurrency
        self._dlx = dead_letter_exchange
        self._buffer: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._stopping = False
        self._delay_queues: set[str] = set()
        self._spec = route.spec
        self._max_redeliveries = max_redeliveries
        self._chain = compose(middleware)
        if self._chain is not None:
            self._needs_message = True  # middleware sees every delivery's Message
        self.in_flight = 0
        self._solo = False
        self._solo_lock = asyncio.Lock()
        self._solo_done = asyncio.Event()
        self._drained: asyncio.Event | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    async def start(self) -> None:
        """Start the workers, then the subscription."""
        name = self._spec.name
        self._workers = [
            asyncio.get_running_loop().create_task(self._work(), name=f"burrowmq-worker:{name}")
            for _ in range(self._concurrency)
        ]
        try:
            self._subscription = await self._transport.consume(
                self.queue, self._buffer.put_nowait, prefetch=self._prefetch
            )
        except BaseException:
            await self._stop_workers(0)
            raise
        _log.debug(
            "consumer_started",
            queue=self.queue,
            handler=name,
            prefetch=self._prefetch,
            concurrency=self._concurrency,
        )

    async def stop(self, timeout: float) -> None:
        """Stop taking deliveries, let in-flight handlers finish (up to ``timeout``), close.

        Deliveries not handled by then go back to the queue when the channel closes.
        """
        self._stopping = True
        if self._subscription is not None:
            await self._subscription.cancel()
        await self._stop_workers(timeout)
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        _log.debug("consumer_stopped", queue=self.queue, handler=self._spec.name)

    async def _stop_workers(self, timeout: float) -> None:
        self._stopping = True
        for _ in self._workers:
            self._buffer.put_nowait(_STOP)
        if not self._workers:
            return
        _, pending = await asyncio.wait(self._workers, timeout=timeout)
        if pending:
            _log.warning(
                "shutdown_timeout",
                queue=self.queue,
                handler=self._spec.name,
                cancelled=len(pending),
                timeout=timeout,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._workers = []

    async def _work(self) -> None:
        # Each worker task has its own context: what is the same for every delivery of
        # this route is bound once here, not per message.
        _bind(queue=self.queue, handler=self._spec.name)
        get = self._buffer.get
        while True:
            delivery = await get()
            if delivery is None or self._stopping:
                return  # an unstarted delivery stays unacked: the broker requeues it
            if delivery.stale:
                # Its channel is gone and the broker has put it back on the queue: handling
                # it now would only make a duplicate.
                _log.debug("stale_delivery_skipped", delivery_tag=delivery.delivery_tag)
                continue
            if delivery.redelivered:
                await self._run_alone(delivery)
                continue
            while self._solo:  # a redelivered message is running alone: wait for it
                await self._solo_done.wait()
            if self.stopping:
                return  # stopped while waiting: the delivery goes back to the queue
            await self._run(delivery)

    async def _run(self, delivery: Delivery) -> None:
        self.in_flight += 1
        try:
            await self._handle(delivery)
        except Exception:  # never let one message kill a worker
            _log.exception("dispatch_failed", queue=self.queue, handler=self._spec.name)
        finally:
            self.in_flight -= 1
            if not self.in_flight and self._drained is not None:
                self._drained.set()

    async def _run_alone(self, delivery: Delivery) -> None:
        """Handle a redelivered message with no other handler running beside it.

        A redelivered message may be the one that crashed the last consumer. Run alone,
        after the acks of everything that finished before it were sent, it cannot take
        innocent messages down with it (they would come back redelivered, and be counted
        towards the poison limit with it). Redeliveries are rare, so this costs nothing
        in the normal case.
        """
        async with self._solo_lock:
            self._solo = True
            self._solo_done.clear()
            try:
                while self.in_flight:
                    self._drained = asyncio.Event()
                    await self._drained.wait()
                self._drained = None
                await self._run(delivery)
            finally:
                self._solo = False
                self._solo_done.set()

    async def _handle(self, delivery: Delivery) -> None:
        props = delivery.properties
        headers = props.headers
        retries = _retry_count(headers)
        attempt = retries + 1
        exchange = delivery.exchange
        routing_key = delivery.routing_key
        if retries:  # came back from a delay queue: show where it was first sent
            exchange = headers.get(HEADER_ORIGINAL_EXCHANGE, exchange)
            routing_key = headers.get(HEADER_ORIGINAL_ROUTING_KEY, routing_key)
        if props.correlation_id is None:
            tokens = _bind(message_id=props.message_id, routing_key=routing_key, attempt=attempt)
        else:
            tokens = _bind(
                message_id=props.message_id,
                correlation_id=props.correlation_id,
                routing_key=routing_key,
                attempt=attempt,
            )
        try:
            spec = self._spec
            if delivery.redelivered:
                if self._max_redeliveries is not None:
                    count = delivery_count(headers)
                    if count > self._max_redeliveries:
                        poison = TooManyRedeliveries(count, self._max_redeliveries)
                        _log.error("poison_message", handler=spec.name, reason=poison.reason)
                        await self._dead_letter(delivery, poison, attempt, exchange, routing_key)
                        return
                # It may be the message that crashed the last consumer: the acks of what
                # finished before it go out first, so they cannot die with it again.
                await delivery.settle_pending()
            try:
                value = spec.decode(delivery.body)
            except DecodeError as exc:
                _log.warning(
                    "payload_invalid",
                    handler=spec.name,
                    reason=exc.reason,
                    content_type=props.content_type,
                )
                await self._dead_letter(delivery, exc, attempt, exchange, routing_key)
                return
            message = (
                message_of(delivery, self.queue, exchange, routing_key, attempt)
                if spec.wants_message or self._needs_message
                else NO_MESSAGE
            )
            retry = self._retry
            chain = self._chain
            while True:
                try:
                    if chain is None:
                        result = await spec.call(value, message)
                    else:
                        result = await chain(message, functools.partial(spec.call, value, message))
                except Reject as signal:
                    _log.info("message_rejected", handler=spec.name, reason=signal.reason)
                    await self._dead_letter(delivery, signal, attempt, exchange, routing_key)
                    return
                except Exception as exc:
                    if not retry.retryable(exc) or attempt >= retry.attempts:
                        _log.error(
                            "handler_failed",
                            handler=spec.name,
                            attempts=attempt,
                            error=f"{type(exc).__name__}: {exc}",
                            exc_info=not isinstance(exc, BurrowError),
                        )
                        await self._on_failure(
                            delivery, message, exc, attempt, exchange, routing_key
                        )
                        return
                    delay = retry.delay(attempt)
                    _log.warning(
                        "handler_failed_will_retry",
                        handler=spec.name,
                        delay=round(delay, 3),
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    if delay > retry.broker_delay_threshold:
                        await self._delay(delivery, delay, attempt, exchange, routing_key)
                        return
                    if delay > 0:
                        await asyncio.sleep(delay)
                    attempt += 1
                    _bind(attempt=attempt)
                    if message is not NO_MESSAGE:
                        message = dataclasses.replace(message, attempt=attempt)
                    continue
                await self._on_success(delivery, message, result)
                return
        finally:
            _reset(**tokens)

    # Hooks for subclasses (the RPC server replies before it acks).
    _needs_message = False

    async def _on_success(self, delivery: Delivery, message: Message, result: Any) -> None:
        if not await delivery.ack():
            _log.warning("ack_lost", reason="channel closed; the broker will redeliver")

    async def _on_failure(
        self,
        delivery: Delivery,
        message: Message,
        exc: BaseException,
        attempt: int,
        exchange: str,
        routing_key: str,
    ) -> None:
        await self._dead_letter(delivery, exc, attempt, exchange, routing_key)

    # -- dead letters and delayed retries ------------------------------------------

    async def _dead_letter(
        self,
        delivery: Delivery,
        exc: BaseException,
        attempt: int,
        exchange: str,
        routing_key: str,
    ) -> None:
        """Publish a confirmed copy to the dead-letter exchange, then ack the original."""
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
        headers[HEADER_ORIGINAL_EXCHANGE] = exchange
        headers[HEADER_ORIGINAL_ROUTING_KEY] = routing_key
        headers[HEADER_ORIGINAL_QUEUE] = self.queue
        headers[HEADER_RETRY_COUNT] = attempt - 1
        copy = dataclasses.replace(props, headers=headers, delivery_mode=2, expiration=None)
        try:
            await self._transport.publish(self._dlx, routing_key, delivery.body, copy)
        except BurrowError as error:
            _log.error(
                "dead_letter_failed",
                exchange=self._dlx,
                error=str(error),
                outcome="left unacked; the broker will redeliver",
            )
            await self._release_later(delivery)
            return
        await delivery.ack()
        _log.info(
            "message_dead_lettered",
            exchange=self._dlx,
            exception_type=type(exc).__name__,
            reason=reason[:200],
        )

    async def _delay(
        self, delivery: Delivery, delay: float, attempt: int, exchange: str, routing_key: str
    ) -> None:
        """Park the message in a TTL queue that dead-letters it back to this queue."""
        ms = max(1, round(delay * 1000))
        name = f"{self.queue}.retry.{ms}"
        try:
            if name not in self._delay_queues:
                await self._transport.declare_queue(
                    name,
                    durable=True,
                    arguments={
                        "x-queue-type": "classic",
                        "x-message-ttl": ms,
                        "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": self.queue,
                    },
                )
                self._delay_queues.add(name)
            props = delivery.properties
            headers = dict(props.headers)
            headers[HEADER_RETRY_COUNT] = attempt
            headers[HEADER_ORIGINAL_EXCHANGE] = exchange
            headers[HEADER_ORIGINAL_ROUTING_KEY] = routing_key
            copy = dataclasses.replace(props, headers=headers, expiration=None)
            await self._transport.publish("", name, delivery.body, copy, mandatory=True)
        except BurrowError as error:
            _log.error("retry_delay_failed", queue=name, error=str(error))
            await self._release_later(delivery)
            return
        await delivery.ack()
        _log.info("message_delayed", delay_queue=name, delay=delay)

    async def _release_later(self, delivery: Delivery) -> None:
        # Requeue after a pause, so a broken dead-letter path does not spin hot.
        await asyncio.sleep(1.0)
        with contextlib.suppress(Exception):
            await delivery.nack(requeue=True)


def message_of(
    delivery: Delivery, queue: str, exchange: str, routing_key: str, attempt: int
) -> Message:
    """The :class:`Message` a handler sees of ``delivery``, consumed from ``queue``.

    ``exchange`` and ``routing_key`` are where it was first published (a retried message
    comes back through the default exchange), ``attempt`` its delivery to the handler.
    """
    props = delivery.properties
    return Message(
        body=delivery.body,
        headers=props.headers,
        exchange=exchange,
        routing_key=routing_key,
        message_id=props.message_id,
        correlation_id=props.correlation_id,
        redelivered=delivery.redelivered,
        attempt=attempt,
        content_type=props.content_type,
        timestamp=props.timestamp,
        reply_to=props.reply_to,
        queue=queue,
    )


NO_MESSAGE: Any = Message(body=b"")
"""Passed to handlers that take no Message, so none is built per delivery (also by RPC)."""
