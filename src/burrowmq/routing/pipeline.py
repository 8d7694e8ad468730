"""The delivery pipeline: decode -> middleware -> handler (with retry) -> settle.

Every delivery of every route, message or RPC, goes through one :class:`Pipeline`.
The kinds of routes differ only in the last step, their :class:`Settle`: message routes
settle by ack, delayed retry or dead-letter (:mod:`burrowmq.routing.settle`); RPC routes
by reply-then-ack (:mod:`burrowmq.rpc.server`). The App's middleware wraps both.

The facts of one delivery travel through the steps as one :class:`Inbound`. A pipeline is
built once per route (decoder, middleware chain, calling convention) and does no
inspection per message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from burrowmq.exceptions import (
    BurrowError,
    ConfigurationError,
    DecodeError,
    HandlerTimeout,
    TooManyRedeliveries,
)
from burrowmq.framework.codecs import BodyDecoder, Codecs
from burrowmq.framework.instrument import Hooks
from burrowmq.framework.log import get_logger
from burrowmq.framework.message import Message
from burrowmq.framework.middleware import Chain
from burrowmq.framework.transport import Delivery, Properties
from burrowmq.framework.urls import redact
from burrowmq.routing.dead_letter import (
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_ROUTING_KEY,
    original,
    retry_count,
)
from burrowmq.routing.depends import Injection
from burrowmq.routing.handler import Handler
from burrowmq.routing.key_pattern import KeyParameters
from burrowmq.routing.redelivery import delivery_count
from burrowmq.routing.retry import Retry
from burrowmq.routing.signals import Reject

__all__ = ["NO_MESSAGE", "Collect", "Inbound", "Pipeline", "Settle", "timed"]

_log = get_logger()
_bind = structlog.contextvars.bind_contextvars
_reset = structlog.contextvars.reset_contextvars

_DEFAULT_CODECS = Codecs()

Collect = Callable[["Inbound", Any], Awaitable[None]]
"""Takes a decoded delivery instead of the handler (a batch route's collector)."""

NO_MESSAGE: Any = Message(body=b"")
"""Passed to handlers that take no Message, so that none is built per delivery."""

_NO_WORDS: Mapping[str, Any] = {}  # the words of a route without routing-key parameters


@dataclass(slots=True)
class Inbound:
    """One delivery on its way through a pipeline, with what every step needs to know.

    Attributes:
        delivery: the delivery, with the means to settle it.
        queue: the queue it was consumed from.
        exchange: where it was first published (a retried message comes back through
            the default exchange; this is still the original).
        routing_key: the routing key it was first published with.
        attempt: its delivery to the handler, 1 on the first.
        message: the :class:`Message` the handler and middleware see (``NO_MESSAGE``
            when neither asks for one).
    """

    delivery: Delivery
    queue: str
    exchange: str
    routing_key: str
    attempt: int
    message: Message = NO_MESSAGE
    seconds: float = 0.0
    """How long the handler took on its last attempt (measured when instruments listen)."""
    offset: int | None = None
    """Its offset in the stream it was read from (set by a stream's settle step)."""

    @property
    def properties(self) -> Properties:
        """The delivery's AMQP properties."""
        return self.delivery.properties

    def to_message(self) -> Message:
        """The :class:`Message` of this delivery, as a handler sees it."""
        delivery = self.delivery
        props = delivery.properties
        return Message(
            body=delivery.body,
            headers=props.headers,
            exchange=self.exchange,
            routing_key=self.routing_key,
            message_id=props.message_id,
            correlation_id=props.correlation_id,
            redelivered=delivery.redelivered,
            attempt=self.attempt,
            content_type=props.content_type,
            timestamp=props.timestamp,
            reply_to=props.reply_to,
            queue=self.queue,
            offset=self.offset,
        )


class Settle(Protocol):
    """The last step of a pipeline: what becomes of a delivery, by outcome.

    Each method settles the delivery (or leaves it, unacked, to the broker) and must not
    raise for a broker failure: it logs and arranges a redelivery instead.

    ``FAILED`` names, for metrics, what a failure becomes (``"dead_lettered"`` for a
    message route, ``"rejected"`` for an RPC route, whose failure is answered).
    ``ANSWERED`` tells whether a failure goes back to a caller (RPC): the handler's
    exception is then an answer (the caller gets a ``RemoteError``), often an ordinary
    business error, and is logged at warning without its traceback (which is logged at
    debug level).
    """

    FAILED: str
    ANSWERED: bool

    async def admit(self, inbound: Inbound) -> bool:
        """Whether to run the delivery at all; ``False`` when this step settled it."""
        ...

    async def invalid(self, inbound: Inbound, error: DecodeError) -> None:
        """The body did not decode or validate."""
        ...

    async def handled(self, inbound: Inbound, result: Any) -> None:
        """The handler returned ``result`` (or a middleware returned ``DROPPED``)."""
        ...

    async def rejected(self, inbound: Inbound, signal: Reject) -> None:
        """The handler raised :class:`~burrowmq.Reject`."""
        ...

    async def failed(self, inbound: Inbound, error: BaseException) -> None:
        """The handler failed for good (retries exhausted), or the delivery is poison."""
        ...

    def can_retry(self, inbound: Inbound) -> bool:
        """Whether another attempt is still worth making (an RPC caller still waits)."""
        ...

    async def park(self, inbound: Inbound, delay: float) -> bool:
        """Wait ``delay`` seconds on the broker; ``False`` to wait in process instead."""
        ...


class Pipeline:
    """Runs the deliveries of one route: decode, middleware, handler with retry, settle.

    Args:
        handler: the route's handler, inspected.
        queue: the queue its deliveries come from.
        retry: the effective retry policy.
        settle: the last step.
        chain: the App's middleware, composed (``None`` when there is none).
        max_redeliveries: a redelivery whose broker delivery count exceeds this is
            settled as failed (:class:`~burrowmq.TooManyRedeliveries`) without running;
            ``None`` turns the check off.
        context: log context bound for each delivery (what the worker did not bind).
        hooks: the App's instruments (``None``: none, and no work is done for them).
        timeout: seconds one attempt of the handler may take before it is cancelled
            and fails with :class:`~burrowmq.HandlerTimeout` (``None``: no limit, and
            no work is done for it).
        parameters: the route's routing-key parameters (``None``: none, and no work
            is done for them); a routing key that does not fit them settles the
            delivery as invalid.
        injection: what the handler's dependencies are bound to (the running app,
            the overrides); used only by a handler that takes dependencies.
        codecs: the App's codecs, which decode the body by its content type and
            encoding (``None``: the built-in ones).
        collect: for a batch route, takes each decoded delivery in place of the
            handler step (:class:`~burrowmq.routing.batch.BatchCollector`); ``None``
            for every other route.
    """

    __slots__ = (
        "_call",
        "_chain",
        "_collect",
        "_context",
        "_decode",
        "_hooks",
        "_keyed",
        "_max",
        "_parameters",
        "_queue",
        "_retry",
        "_settle",
        "_spec",
        "_wants",
    )

    def __init__(
        self,
        handler: Handler,
        *,
        queue: str,
        retry: Retry,
        settle: Settle,
        chain: Chain | None = None,
        max_redeliveries: int | None = None,
        context: Mapping[str, Any] | None = None,
        hooks: Hooks | None = None,
        timeout: float | None = None,
        parameters: KeyParameters | None = None,
        injection: Injection | None = None,
        codecs: Codecs | None = None,
        collect: Collect | None = None,
    ) -> None:
        self._spec = handler
        self._collect = collect
        payload = handler.payload_type
        self._decode: BodyDecoder = (codecs or _DEFAULT_CODECS).decoder(
            None if payload is Any else payload
        )
        # The handler call, with the route's timeout around it when it has one.
        self._call: Callable[..., Awaitable[Any]] = handler.call
        self._keyed: Callable[..., Awaitable[Any]] = handler.call  # (used with parameters)
        self._parameters = parameters
        keyed = handler.keyed
        wants = handler.wants_message
        if handler.dependencies is not None:  # bound once, here: the app is starting
            keyed, wants = handler.dependencies.bind(injection or Injection())
            if parameters is None:
                self._call = functools.partial(keyed, _NO_WORDS)
        if parameters is not None:
            if keyed is None:
                raise ConfigurationError(
                    f"handler {handler.name} was not inspected for routing-key parameters"
                )
            self._keyed = keyed if timeout is None else timed(keyed, handler.name, timeout)
        elif timeout is not None:
            self._call = timed(self._call, handler.name, timeout)
        self._hooks = hooks
        self._queue = queue
        self._retry = retry
        self._settle = settle
        self._chain = chain
        self._max = max_redeliveries
        self._context = dict(context or {})
        # Middleware sees every delivery's Message; otherwise only handlers asking for one.
        self._wants = wants or chain is not None

    @property
    def handler(self) -> Handler:
        """The route's handler."""
        return self._spec

    async def run(self, delivery: Delivery) -> None:
        """Take ``delivery`` through every step; it is settled (or left) when this returns."""
        props = delivery.properties
        headers = props.headers
        retries = retry_count(headers)
        exchange = delivery.exchange
        routing_key = delivery.routing_key
        if retries:  # came back from a delay queue: show where it was first sent
            exchange = original(headers, HEADER_ORIGINAL_EXCHANGE, exchange)
            routing_key = original(headers, HEADER_ORIGINAL_ROUTING_KEY, routing_key)
        inbound = Inbound(delivery, self._queue, exchange, routing_key, retries + 1)
        if props.correlation_id is None and not self._context:  # the common case, kept lean
            tokens = _bind(
                message_id=props.message_id, routing_key=routing_key, attempt=retries + 1
            )
        else:
            tokens = _bind(
                **self._context,
                message_id=props.message_id,
                correlation_id=props.correlation_id,
                routing_key=routing_key,
                attempt=retries + 1,
            )
        try:
            await self._run(inbound)
        finally:
            _reset(**tokens)

    async def _run(self, inbound: Inbound) -> None:
        settle = self._settle
        spec = self._spec
        if not await settle.admit(inbound):
            return
        hooks = self._hooks
        delivery = inbound.delivery
        if delivery.undecodable:
            problem = _undecodable(delivery.undecodable)
            _log.error("properties_undecodable", handler=spec.name, reason=problem.reason)
            await settle.invalid(inbound, problem)
            if hooks is not None:
                hooks.delivery_settled(self._queue, spec.name, "rejected", 0.0)
            return
        if delivery.redelivered:
            if self._max is not None:
                count = delivery_count(delivery.properties.headers)
                if count > self._max:
                    poison = TooManyRedeliveries(count, self._max)
                    _log.error("poison_message", handler=spec.name, reason=poison.reason)
                    await settle.failed(inbound, poison)
                    if hooks is not None:
                        hooks.delivery_settled(self._queue, spec.name, settle.FAILED, 0.0)
                    return
            # It may be the message that crashed the last consumer: the acks of what
            # finished before it go out first, so they cannot die with it again.
            await delivery.settle_pending()
        call = self._call
        try:
            props = delivery.properties
            value = self._decode(delivery.body, props.content_type, props.content_encoding)
            if self._parameters is not None:
                words = self._parameters.extract(inbound.routing_key)
                call = functools.partial(self._keyed, words)
        except DecodeError as exc:
            _log.warning(
                "payload_invalid",
                handler=spec.name,
                reason=exc.reason,
                content_type=delivery.properties.content_type,
            )
            await settle.invalid(inbound, exc)
            if hooks is not None:
                hooks.delivery_settled(self._queue, spec.name, "rejected", 0.0)
            return
        if self._wants:
            inbound.message = inbound.to_message()
        if self._collect is not None:
            await self._collect(inbound, value)
            return
        retry = self._retry
        chain = self._chain
        while True:
            message = inbound.message
            try:
                if hooks is None:
                    if chain is None:
                        result = await call(value, message)
                    else:
                        result = await chain(message, functools.partial(call, value, message))
                else:  # timed, and traced if an instrument traces (inline: no coroutine more)
                    started = time.perf_counter()
                    try:
                        if not hooks.traces:
                            if chain is None:
                                result = await call(value, message)
                            else:
                                result = await chain(
                                    message, functools.partial(call, value, message)
                                )
                        else:
                            with hooks.tracing_delivery(
                                self._queue,
                                spec.name,
                                inbound.exchange,
                                inbound.routing_key,
                                props,  # the delivery's (Inbound.properties: a call more)
                            ):
                                if chain is None:
                                    result = await call(value, message)
                                else:
                                    result = await chain(
                                        message, functools.partial(call, value, message)
                                    )
                    finally:
                        inbound.seconds = time.perf_counter() - started
            except Reject as signal:
                _log.info("message_rejected", handler=spec.name, reason=signal.reason)
                await settle.rejected(inbound, signal)
                if hooks is not None:
                    hooks.delivery_settled(self._queue, spec.name, "rejected", inbound.seconds)
                return
            except Exception as exc:
                attempt = inbound.attempt
                if (
                    not retry.retryable(exc)
                    or attempt >= retry.attempts
                    or not settle.can_retry(inbound)
                ):
                    error = f"{type(exc).__name__}: {redact(str(exc))}"
                    if settle.ANSWERED:
                        _log.warning("rpc_handler_raised", handler=spec.name, error=error)
                        _log.debug("rpc_handler_traceback", exception=_trace(exc))
                    else:
                        _log.error(
                            "handler_failed",
                            handler=spec.name,
                            attempts=attempt,
                            error=error,
                            **({} if isinstance(exc, BurrowError) else {"exception": _trace(exc)}),
                        )
                    await settle.failed(inbound, exc)
                    if hooks is not None:
                        hooks.delivery_settled(
                            self._queue, spec.name, settle.FAILED, inbound.seconds
                        )
                    return
                delay = retry.delay(attempt)
                if hooks is not None:
                    hooks.delivery_settled(self._queue, spec.name, "retried", inbound.seconds)
                _log.warning(
                    "handler_failed_will_retry",
                    handler=spec.name,
                    delay=round(delay, 3),
                    error=f"{type(exc).__name__}: {redact(str(exc))}",
                )
                if delay > retry.broker_delay_threshold and await settle.park(inbound, delay):
                    return
                if delay > 0:
                    await asyncio.sleep(delay)
                inbound.attempt = attempt = attempt + 1
                _bind(attempt=attempt)
                if message is not NO_MESSAGE:
                    inbound.message = dataclasses.replace(message, attempt=attempt)
                continue
            await settle.handled(inbound, result)
            if hooks is not None:
                hooks.delivery_settled(self._queue, spec.name, "acked", inbound.seconds)
            return


def timed(
    call: Callable[..., Awaitable[Any]], name: str, seconds: float
) -> Callable[..., Awaitable[Any]]:
    """``call`` (the handler ``name``'s), cancelled after ``seconds``, then raising
    HandlerTimeout.

    Only the handler is timed, inside the middleware, so that a middleware sees the
    timeout as the handler's failure. A ``TimeoutError`` the handler raises itself
    (before the limit) stays what it is.
    """

    async def call_timed(*args: Any) -> Any:
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await call(*args)
        except TimeoutError:
            if not scope.expired():
                raise
            raise HandlerTimeout(
                f"handler {name} ran past its timeout of {seconds:g}s and was cancelled",
                handler=name,
                timeout=seconds,
            ) from None

    return call_timed


def _undecodable(raw: Mapping[str, Any]) -> DecodeError:
    names = ", ".join(sorted(raw))
    return DecodeError(
        f"message properties the AMQP library could not decode: {names} (kept raw in "
        "the x-undecodable-properties header)"
    )


def _trace(exc: BaseException) -> str:
    """The traceback of a handler's exception, as a log shows it, credentials masked."""
    return redact("".join(traceback.format_exception(exc)).rstrip())
