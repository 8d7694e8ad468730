"""The RPC server: one consumer per service queue, answering every request.

An :class:`RpcServer` consumes a service's queue (``rpc.<service>``) with the worker
pool of :class:`~burrowmq.routing.dispatch.Consumer` and dispatches each request on its
routing key (the procedure name) to the route serving it. Every request that is not
expired gets exactly one reply, published before the request is acked:

- the handler's result, shaped by its return annotation;
- or an error envelope (see :mod:`burrowmq.rpc.protocol`): the handler's exception
  type and message, a validation failure naming the fields, or an unknown method.

Requests whose caller already gave up (``x-rpc-deadline`` passed) are acked and dropped
without running. Nothing is dead-lettered and nothing is retried unless the route says
so: a request may not be idempotent.
"""

from __future__ import annotations

import asyncio
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from burrowmq.exceptions import BurrowError, ConfigurationError, ConnectionLost, DecodeError
from burrowmq.framework.codec import JSON, describe_validation_error, encode
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Properties, Transport
from burrowmq.routing.dispatch import NO_MESSAGE, Consumer, message_of
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import Route
from burrowmq.rpc.protocol import (
    ERROR_TYPE,
    REPLY_INVALID,
    REPLY_TYPE,
    UNKNOWN_PROCEDURE,
    VALIDATION_ERROR,
    deadline_passed,
    encode_error,
)

__all__ = ["ReplyEncoder", "RpcServer", "reply_encoder", "rpc_servers"]

_log = get_logger()
_bind = structlog.contextvars.bind_contextvars
_reset = structlog.contextvars.reset_contextvars

ReplyEncoder = Callable[[Any], tuple[bytes, str]]
"""Turns a handler's result into a reply body and its content type."""

_NO_RETRY = Retry(attempts=1)
_UNDELIVERABLE_KEPT = 1000


def reply_encoder(returns: Any) -> ReplyEncoder:
    """Build the encoder of a handler's results from its return annotation, once.

    A model annotation serialises instances directly and validates anything else
    (a ``dict``, say) into the model first; any other annotation pydantic understands
    validates then serialises; no annotation (or ``None``, ``Any``, ``bytes``, ``str``)
    encodes the value as it is.

    Raises:
        ConfigurationError: pydantic cannot build a schema for the annotation.
    """
    if returns is None or returns is Any or returns is type(None) or returns in (bytes, str):
        return encode
    if isinstance(returns, type) and issubclass(returns, BaseModel):
        model = returns

        def encode_model(value: Any) -> tuple[bytes, str]:
            if not isinstance(value, model):
                value = model.model_validate(value)
            return value.__pydantic_serializer__.to_json(value), JSON

        return encode_model
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(returns)
    except Exception as exc:
        raise ConfigurationError(f"cannot use return annotation {returns!r}: {exc}") from None

    def encode_value(value: Any) -> tuple[bytes, str]:
        return adapter.dump_json(adapter.validate_python(value)), JSON

    return encode_value


class _Served:
    """One procedure of the service: its route, reply encoder and retry policy."""

    __slots__ = ("encode", "retry", "route", "spec")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.spec = route.spec
        self.encode = reply_encoder(route.spec.returns)
        self.retry = route.retry or _NO_RETRY


class RpcServer(Consumer):
    """Serves the procedures of one service queue.

    Args:
        routes: the RPC routes consuming ``queue`` (one per procedure).
        transport: the connection to consume and reply on.
        queue: the service queue.
        prefetch: requests the broker may send ahead.
        concurrency: handlers running at once.
        tracebacks: send the handler's traceback in error replies.

    Raises:
        ConfigurationError: two routes serve the same procedure.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        transport: Transport,
        queue: str,
        prefetch: int,
        concurrency: int,
        tracebacks: bool = False,
    ) -> None:
        super().__init__(
            routes[0],
            transport=transport,
            queue=queue,
            retry=_NO_RETRY,
            prefetch=prefetch,
            concurrency=concurrency,
            dead_letter_exchange=None,
        )
        self._served: dict[str, _Served] = {}
        # Requests whose reply could not be published because the connection dropped
        # (RabbitMQ 3.x closes the whole connection for some malformed direct reply-to
        # addresses): when they come back redelivered they are dropped, not run and
        # answered again, which would take the connection down in a loop.
        self._undeliverable: OrderedDict[str, None] = OrderedDict()
        for route in routes:
            assert route.procedure is not None
            if route.procedure in self._served:
                other = self._served[route.procedure].route.name
                raise ConfigurationError(
                    f"procedure {route.procedure!r} is served by two handlers "
                    f"({other} and {route.name})"
                )
            self._served[route.procedure] = _Served(route)
        self._tracebacks = tracebacks

    @property
    def procedures(self) -> tuple[str, ...]:
        """The procedures this server answers, sorted."""
        return tuple(sorted(self._served))

    async def _handle(self, delivery: Delivery) -> None:
        props = delivery.properties
        headers = props.headers
        procedure = delivery.routing_key
        if headers and deadline_passed(headers):
            _log.debug(
                "rpc_request_expired",
                procedure=procedure,
                correlation_id=props.correlation_id,
                queue=self.queue,
            )
            await delivery.ack()
            return
        key = props.message_id or props.correlation_id
        if delivery.redelivered and key is not None and key in self._undeliverable:
            _log.error(
                "rpc_reply_undeliverable",
                procedure=procedure,
                correlation_id=props.correlation_id,
                reply_to=props.reply_to,
                outcome="dropped: publishing its reply lost the connection before",
            )
            await delivery.ack()
            return
        tokens = _bind(
            queue=self.queue,
            procedure=procedure,
            correlation_id=props.correlation_id,
            message_id=props.message_id,
        )
        try:
            body, content_type, kind = await self._answer(delivery, procedure)
            reply_to = props.reply_to
            if not reply_to:
                _log.debug("rpc_request_without_reply_to", outcome="ran; nobody to answer")
                await delivery.ack()
                return
            reply = Properties(
                content_type=content_type,
                correlation_id=props.correlation_id,
                type=kind,
                delivery_mode=1,
                timestamp=datetime.now(UTC),
            )
            try:
                await self._transport.publish("", reply_to, body, reply)
            except ConnectionLost as error:
                if key is not None:
                    self._undeliverable[key] = None
                    while len(self._undeliverable) > _UNDELIVERABLE_KEPT:
                        self._undeliverable.popitem(last=False)
                _log.error(
                    "rpc_reply_failed",
                    error=str(error),
                    outcome="the request comes back redelivered and is then dropped",
                )
                await delivery.nack(requeue=False)
                return
            except BurrowError as error:
                _log.error(
                    "rpc_reply_failed",
                    error=str(error),
                    outcome="request dropped; the caller will time out",
                )
                await delivery.nack(requeue=False)
                return
            if not await delivery.ack():
                _log.warning("ack_lost", reason="channel closed; the broker will redeliver")
        finally:
            _reset(**tokens)

    async def _answer(self, delivery: Delivery, procedure: str) -> tuple[bytes, str, str]:
        """Run the procedure; return the reply's body, content type and kind."""
        served = self._served.get(procedure)
        if served is None:
            _log.warning("rpc_unknown_procedure", known=self.procedures)
            return (
                encode_error(
                    UNKNOWN_PROCEDURE,
                    f"{procedure!r} is not a procedure of this service; it serves: "
                    + ", ".join(self.procedures),
                    details={"procedures": list(self.procedures)},
                ),
                JSON,
                ERROR_TYPE,
            )
        spec = served.spec
        try:
            value = spec.decode(delivery.body)
        except DecodeError as exc:
            _log.info("rpc_request_invalid", reason=exc.reason)
            return (
                encode_error(
                    VALIDATION_ERROR,
                    f"invalid request for {procedure}: {exc.reason}",
                    details=exc.errors,
                ),
                JSON,
                ERROR_TYPE,
            )
        message = (
            message_of(delivery, self.queue, delivery.exchange, procedure, 1)
            if spec.wants_message
            else NO_MESSAGE
        )
        retry = served.retry
        attempt = 1
        while True:
            try:
                result = await spec.call(value, message)
                break
            except Exception as exc:
                headers = delivery.properties.headers
                if (
                    attempt < retry.attempts
                    and retry.retryable(exc)
                    and not (headers and deadline_passed(headers))
                ):
                    delay = retry.delay(attempt)
                    _log.warning(
                        "rpc_handler_failed_will_retry",
                        attempt=attempt,
                        delay=round(delay, 3),
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    if delay > 0:
                        await asyncio.sleep(delay)
                    attempt += 1
                    continue
                return self._error_reply(exc, attempt), JSON, ERROR_TYPE
        try:
            body, content_type = served.encode(result)
        except (ValidationError, DecodeError) as exc:
            reason = (
                describe_validation_error(exc) if isinstance(exc, ValidationError) else exc.reason
            )
            _log.error("rpc_reply_invalid", handler=spec.name, reason=reason)
            return (
                encode_error(
                    REPLY_INVALID,
                    f"the result of {procedure} does not fit its return annotation: {reason}",
                ),
                JSON,
                ERROR_TYPE,
            )
        return body, content_type, REPLY_TYPE

    def _error_reply(self, exc: Exception, attempts: int) -> bytes:
        name = type(exc).__qualname__
        _log.warning(
            "rpc_handler_failed",
            attempts=attempts,
            error=f"{name}: {exc}",
            exc_info=not isinstance(exc, BurrowError),
        )
        details = getattr(exc, "details", None)
        trace = "".join(traceback.format_exception(exc)) if self._tracebacks else None
        return encode_error(name, str(exc), details=details, traceback=trace)


def rpc_servers(
    routes: Sequence[Route],
    *,
    queue_name: Callable[[Route], str],
    transport: Transport,
    prefetch: int,
    concurrency: int,
    tracebacks: bool = False,
) -> list[RpcServer]:
    """One :class:`RpcServer` per service queue, for the RPC routes among ``routes``.

    A service's prefetch and concurrency are the largest its routes give, else
    ``prefetch`` and ``concurrency``.

    Raises:
        ConfigurationError: two routes serve the same procedure.
    """
    groups: dict[str, list[Route]] = {}
    for route in routes:
        if route.procedure is not None:
            groups.setdefault(queue_name(route), []).append(route)
    servers = []
    for queue, group in groups.items():
        prefetches = [r.prefetch for r in group if r.prefetch is not None]
        concurrencies = [r.concurrency for r in group if r.concurrency is not None]
        servers.append(
            RpcServer(
                group,
                transport=transport,
                queue=queue,
                prefetch=max(prefetches, default=prefetch),
                concurrency=max(concurrencies, default=concurrency),
                tracebacks=tracebacks,
            )
        )
    return servers
