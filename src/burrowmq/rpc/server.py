"""The RPC server: the delivery pipeline with a reply-then-ack settle step.

One :class:`RpcServer` per service queue (``rpc.<service>``) dispatches each request on
its routing key (the procedure name) to the pipeline of the route serving it, the same
pipeline message routes use (decode, App middleware, handler with retry). Its settle
step, :class:`ReplySettle`, gives every request that is not expired exactly one reply,
published before the request is acked:

- the handler's result, shaped by its return annotation;
- or an error envelope (see :mod:`burrowmq.rpc.protocol`): the handler's exception
  type and message, a validation failure naming the fields, or an unknown method.

Requests whose caller already gave up (``x-rpc-deadline`` passed) are acked and dropped
without running; so is a request a middleware dropped (``DROPPED``). Nothing is
dead-lettered and nothing is retried unless the route says so: a request may not be
idempotent.
"""

from __future__ import annotations

import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import pydantic_core
import structlog

from burrowmq.exceptions import (
    BurrowError,
    ConfigurationError,
    ConnectionLost,
    DecodeError,
    EncodeError,
)
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.codec import (
    JSON,
    OCTET_STREAM,
    TEXT,
    BytesCodec,
    Encoder,
    JsonCodec,
    TextCodec,
    encoder_for,
)
from burrowmq.framework.compression import COMPRESSIONS, compress
from burrowmq.framework.log import get_logger
from burrowmq.framework.middleware import DROPPED
from burrowmq.framework.transport import Delivery, Properties, Transport
from burrowmq.framework.urls import redact
from burrowmq.framework.vocabulary import DIRECT_REPLY_TO, direct_reply_to_problem, name_problem
from burrowmq.routing.consumers import ConsumerSettings
from burrowmq.routing.dispatch import Dispatcher
from burrowmq.routing.pipeline import Inbound, Pipeline
from burrowmq.routing.retry import NO_RETRY
from burrowmq.routing.route import Route
from burrowmq.routing.signals import Reject
from burrowmq.rpc.protocol import (
    ERROR_TYPE,
    REPLY_INVALID,
    REPLY_TYPE,
    UNKNOWN_PROCEDURE,
    VALIDATION_ERROR,
    deadline_passed,
    encode_error,
)

__all__ = ["Replies", "ReplySettle", "RpcServer", "rpc_servers"]

_log = get_logger()
_bind = structlog.contextvars.bind_contextvars
_reset = structlog.contextvars.reset_contextvars

_UNDELIVERABLE_KEPT = 1000


class Replies:
    """Publishes the replies of one service queue, then acks their requests.

    Args:
        transport: where replies are published.
        builder: builds them.
        tracebacks: send the handler's traceback in error replies.
    """

    def __init__(self, transport: Transport, builder: MessageBuilder, *, tracebacks: bool) -> None:
        self._transport = transport
        self._builder = builder
        self.tracebacks = tracebacks
        # Requests whose reply could not be published because the connection dropped
        # (RabbitMQ 3.x closes the whole connection for some malformed direct reply-to
        # addresses): when they come back redelivered they are dropped, not run and
        # answered again, which would take the connection down in a loop.
        self._undeliverable: OrderedDict[str, None] = OrderedDict()

    async def admit(self, delivery: Delivery, *, reply_queues: bool = False) -> bool:
        """Whether to run and answer ``delivery``; if not, it is acked and dropped.

        Dropped: a request whose caller gave up already, one whose reply lost the
        connection before, and one whose ``reply_to`` this server will not publish to (a
        malformed direct reply-to address, or a plain queue unless ``reply_queues``).
        """
        props = delivery.properties
        headers = props.headers
        refusal = _reply_to_problem(props.reply_to, reply_queues=reply_queues)
        if refusal is not None:
            _log.warning(
                "rpc_reply_to_refused",
                procedure=delivery.routing_key,
                reply_to=(props.reply_to or "")[:120],
                reason=refusal,
                outcome="acked and dropped without running",
            )
            await delivery.ack()
            return False
        if headers and deadline_passed(headers):
            _log.debug("rpc_request_expired", procedure=delivery.routing_key)
            await delivery.ack()
            return False
        key = props.message_id or props.correlation_id
        if delivery.redelivered and key is not None and key in self._undeliverable:
            _log.error(
                "rpc_reply_undeliverable",
                procedure=delivery.routing_key,
                reply_to=props.reply_to,
                outcome="dropped: publishing its reply lost the connection before",
            )
            await delivery.ack()
            return False
        return True

    async def send(
        self,
        delivery: Delivery,
        body: bytes,
        content_type: str,
        kind: str,
        *,
        content_encoding: str | None = None,
    ) -> None:
        """Publish a reply to ``delivery``'s ``reply_to``, then ack ``delivery``."""
        props = delivery.properties
        reply_to = props.reply_to
        if not reply_to:
            _log.debug("rpc_request_without_reply_to", outcome="ran; nobody to answer")
            await delivery.ack()
            return
        reply = self._builder.reply(
            body, content_type, correlation_id=props.correlation_id, kind=kind
        )
        reply.content_encoding = content_encoding
        try:
            await self._transport.publish("", reply_to, body, reply)
        except ConnectionLost as error:
            key = props.message_id or props.correlation_id
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

    def in_kind(self, body: bytes, request: Properties) -> tuple[bytes, str, str | None]:
        """A JSON result re-encoded like its request: in the request's codec when that
        is not one of the built-in JSON, text and bytes codecs, and compressed as the
        request was (gzip or deflate).

        Raises:
            EncodeError: the request's codec cannot encode the result.
        """
        codecs = self._builder.codecs
        content_type = request.content_type
        codec = codecs.codec_for(content_type) if content_type else None
        encoding = (request.content_encoding or "").strip().lower()
        compress_with = encoding if encoding in COMPRESSIONS else None
        if codec is None or isinstance(codec, JsonCodec | TextCodec | BytesCodec):
            content_type = None
        else:
            data = pydantic_core.from_json(body)
            if isinstance(data, str):  # sent as JSON text: Codecs.encode takes str as encoded
                content_type = None
            else:
                body = codecs.encode(data, content_type=content_type)[0]
        if content_type is None:
            content_type = JSON
        if compress_with is not None:
            body = compress(body, compress_with)
        return body, content_type, compress_with

    async def error(
        self,
        delivery: Delivery,
        type: str,
        message: str,
        *,
        module: str | None = None,
        details: Any = None,
        trace: str | None = None,
    ) -> None:
        """Answer ``delivery`` with an error envelope."""
        body = encode_error(type, message, module=module, details=details, traceback=trace)
        await self.send(delivery, body, JSON, ERROR_TYPE)


def _reply_to_problem(reply_to: str | None, *, reply_queues: bool) -> str | None:
    if not reply_to:
        return None  # nobody to answer: the request runs, no reply is sent
    if reply_to.startswith(DIRECT_REPLY_TO):
        problem = direct_reply_to_problem(reply_to)
        return None if problem is None else f"malformed direct reply-to address: {problem}"
    if not reply_queues:
        return (
            "the reply_to names a plain queue, and this procedure answers only direct "
            "reply-to addresses (router.rpc(..., reply_queues=True) allows queues)"
        )
    return name_problem(reply_to, "queue")


class ReplySettle:
    """The settle step of one procedure: reply with the result or the error, then ack.

    Args:
        replies: the service queue's replies.
        procedure: the procedure served.
        encoder: shapes the handler's result by its return annotation.
        reply_queues: also answer to plain reply queues.
    """

    FAILED = "rejected"
    ANSWERED = True  # the handler's exception is the caller's RemoteError: an outcome

    __slots__ = ("_encoder", "_procedure", "_replies", "_reply_queues")

    def __init__(
        self, replies: Replies, *, procedure: str, encoder: Encoder, reply_queues: bool = False
    ) -> None:
        self._replies = replies
        self._procedure = procedure
        self._encoder = encoder
        self._reply_queues = reply_queues

    async def admit(self, inbound: Inbound) -> bool:
        return await self._replies.admit(inbound.delivery, reply_queues=self._reply_queues)

    async def handled(self, inbound: Inbound, result: Any) -> None:
        delivery = inbound.delivery
        if result is DROPPED:
            _log.debug("rpc_request_dropped", outcome="acked without a reply")
            await delivery.ack()
            return
        try:
            body, content_type = self._encoder(result)
        except EncodeError as exc:
            _log.error("rpc_reply_invalid", reason=exc.reason)
            await self._replies.error(
                delivery,
                REPLY_INVALID,
                f"the result of {self._procedure} does not fit its return annotation: {exc.reason}",
            )
            return
        request = delivery.properties
        encoding = None
        if content_type == JSON and (
            request.content_encoding is not None
            or request.content_type not in (None, JSON, TEXT, OCTET_STREAM)
        ):
            try:
                body, content_type, encoding = self._replies.in_kind(body, request)
            except EncodeError as exc:
                _log.error("rpc_reply_invalid", reason=exc.reason)
                await self._replies.error(delivery, REPLY_INVALID, exc.reason)
                return
        await self._replies.send(
            delivery, body, content_type, REPLY_TYPE, content_encoding=encoding
        )

    async def invalid(self, inbound: Inbound, error: DecodeError) -> None:
        await self._replies.error(
            inbound.delivery,
            VALIDATION_ERROR,
            f"invalid request for {self._procedure}: {error.reason}",
            details=error.errors,
        )

    async def rejected(self, inbound: Inbound, signal: Reject) -> None:
        kind = type(signal)
        await self._replies.error(
            inbound.delivery, kind.__name__, redact(signal.reason), module=kind.__module__
        )

    async def failed(self, inbound: Inbound, error: BaseException) -> None:
        trace = None
        if self._replies.tracebacks:
            trace = redact("".join(traceback.format_exception(error)))
        kind = type(error)
        await self._replies.error(
            inbound.delivery,
            kind.__name__,  # the plain name: a qualname shows where it was defined
            redact(str(error)),
            module=kind.__module__,
            details=getattr(error, "details", None),
            trace=trace,
        )

    def can_retry(self, inbound: Inbound) -> bool:
        headers = inbound.properties.headers
        return not (headers and deadline_passed(headers))

    async def park(self, inbound: Inbound, delay: float) -> bool:
        return False  # a caller is waiting: retries wait in process


class RpcServer:
    """Serves the procedures of one service queue.

    Args:
        routes: the RPC routes consuming ``queue`` (one per procedure).
        queue: the service queue.
        settings: the App's consumer settings.

    Raises:
        ConfigurationError: two routes serve the same procedure.
    """

    def __init__(self, routes: Sequence[Route], *, queue: str, settings: ConsumerSettings) -> None:
        self.queue = queue
        self._replies = Replies(
            settings.transport, settings.builder, tracebacks=settings.rpc_tracebacks
        )
        self._pipelines: dict[str, Pipeline] = {}
        for route in routes:
            procedure = route.procedure
            assert procedure is not None
            if procedure in self._pipelines:
                other = self._pipelines[procedure].handler.name
                raise ConfigurationError(
                    f"procedure {procedure!r} is served by two handlers ({other} and {route.name})"
                )
            settle = ReplySettle(
                self._replies,
                procedure=procedure,
                encoder=encoder_for(route.spec.returns),
                reply_queues=route.reply_queues,
            )
            self._pipelines[procedure] = Pipeline(
                route.spec,
                queue=queue,
                retry=route.retry or NO_RETRY,
                settle=settle,
                chain=settings.chain,
                max_redeliveries=settings.max_redeliveries,
                context={"handler": route.name, "procedure": procedure},
                hooks=settings.hooks,
                timeout=route.timeout,
                parameters=route.parameters,
                injection=settings.injection,
                codecs=settings.codecs,
            )
        prefetches = [r.prefetch for r in routes if r.prefetch is not None]
        concurrencies = [r.concurrency for r in routes if r.concurrency is not None]
        self.dispatcher = Dispatcher(
            queue,
            self.handle,
            transport=settings.transport,
            prefetch=max(prefetches, default=settings.prefetch),
            concurrency=max(concurrencies, default=settings.concurrency),
            name=f"rpc:{queue}",
            hooks=settings.hooks,
        )

    @property
    def procedures(self) -> tuple[str, ...]:
        """The procedures this server answers, sorted."""
        return tuple(sorted(self._pipelines))

    async def handle(self, delivery: Delivery) -> None:
        """Run a request through its procedure's pipeline, or answer that it has none."""
        pipeline = self._pipelines.get(delivery.routing_key)
        if pipeline is not None:
            await pipeline.run(delivery)
            return
        tokens = _bind(
            procedure=delivery.routing_key,
            correlation_id=delivery.properties.correlation_id,
            message_id=delivery.properties.message_id,
        )
        try:
            if not await self._replies.admit(delivery):
                return
            _log.warning("rpc_unknown_procedure", known=self.procedures)
            await self._replies.error(
                delivery,
                UNKNOWN_PROCEDURE,
                f"{delivery.routing_key!r} is not a procedure of this service; it serves: "
                + ", ".join(self.procedures),
                details={"procedures": list(self.procedures)},
            )
        finally:
            _reset(**tokens)


def rpc_servers(
    routes: Sequence[Route],
    settings: ConsumerSettings,
    *,
    queue_name: Callable[[Route], str] | None = None,
) -> list[RpcServer]:
    """One :class:`RpcServer` per service queue, for the RPC routes among ``routes``.

    A service's prefetch and concurrency are the largest its routes give, else the
    settings'.

    Raises:
        ConfigurationError: two routes serve the same procedure.
    """
    name = queue_name or (lambda route: route.queue_name(settings.instance_id))
    groups: dict[str, list[Route]] = {}
    for route in routes:
        if route.procedure is not None:
            groups.setdefault(name(route), []).append(route)
    return [RpcServer(group, queue=queue, settings=settings) for queue, group in groups.items()]
