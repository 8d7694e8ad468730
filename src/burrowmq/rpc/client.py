"""The RPC client: many calls in flight over one direct reply-to channel per connection.

The client opens, on first use, a :class:`~burrowmq.framework.transport.ReplyChannel`:
one channel consuming ``amq.rabbitmq.reply-to`` (no-ack) on which the requests are
published too, as direct reply-to requires. Calls are matched to replies by correlation
id in a plain dict; no lock is held around a call, so any number run at once.

- A request is published ``mandatory`` on the ``burrowmq.rpc`` exchange: when no
  service queue is bound for it, the broker returns it and the call raises
  :class:`~burrowmq.NoRoute` at once.
- It carries ``expiration`` (the milliseconds left) and an ``x-rpc-deadline`` header,
  so neither the broker nor a server spends effort on it after the caller gave up.
- A call that times out or is cancelled leaves nothing behind; a reply arriving after
  its caller left is dropped with a debug log.
- When the channel or its connection is lost, every call waiting on it fails at once
  with :class:`~burrowmq.ConnectionLost` (requests are not resent: they may not be
  idempotent, and may have run). The next call opens a new channel once the transport
  has reconnected.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from burrowmq.exceptions import (
    BurrowError,
    ConfigurationError,
    ConnectionLost,
    NoRoute,
    NoServer,
    PublishError,
    RemoteError,
    RpcError,
    RpcTimeout,
    Unroutable,
)
from burrowmq.framework.builder import MessageBuilder, new_id
from burrowmq.framework.codecs import BodyDecoder
from burrowmq.framework.instrument import Hooks
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, ReplyChannel, Transport
from burrowmq.routing.procedure import RPC_EXCHANGE, RPC_EXCHANGE_TYPE, Procedure
from burrowmq.rpc.protocol import ERROR_TYPE, HEADER_DEADLINE, decode_error, now_ms

__all__ = ["RpcClient"]

_log = get_logger()


class _Lost:
    """Put in a waiting call's future when its channel closed (never an exception, so
    a future nobody awaits any more cannot log "exception was never retrieved")."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Link:
    """One reply channel and the calls waiting on it."""

    __slots__ = ("channel", "pending")

    def __init__(self) -> None:
        self.channel: ReplyChannel | None = None
        self.pending: dict[str, asyncio.Future[_Outcome]] = {}

    def on_reply(self, delivery: Delivery) -> None:
        correlation_id = delivery.properties.correlation_id
        future = self.pending.get(correlation_id) if correlation_id else None
        if future is None or future.done():
            _log.debug(
                "rpc_late_reply",
                correlation_id=correlation_id,
                outcome="dropped: its caller timed out or was cancelled",
            )
            return
        future.set_result(delivery)

    def on_closed(self, reason: str) -> None:
        lost = _Lost(reason)
        for future in self.pending.values():
            if not future.done():
                future.set_result(lost)

    @property
    def is_open(self) -> bool:
        return self.channel is not None and self.channel.is_open


class _Unserved:
    """Put in a waiting call's future when its service's queue has no consumer."""

    __slots__ = ("queue",)

    def __init__(self, queue: str) -> None:
        self.queue = queue


_Outcome = Delivery | _Lost | _Unserved | None
PROBE_AFTER = 0.2
"""Seconds a call waits for its reply before it asks whether anything serves it."""
_PROBE_KEPT = 1.0  # seconds an answer about a service queue's consumers is reused


def _expire(future: asyncio.Future[_Outcome]) -> None:
    if not future.done():
        future.set_result(None)  # a result, not an exception: see _Lost


class RpcClient:
    """Calls remote procedures over one transport.

    Args:
        transport: the connection (already connected, or reconnecting).
        builder: builds and stamps the requests.
        hooks: the App's instruments (``None``: none, and no work is done for them).
        declare: declare the ``burrowmq.rpc`` exchange before the first call (``False``:
            check that it exists).
    """

    def __init__(
        self,
        transport: Transport,
        builder: MessageBuilder,
        *,
        hooks: Hooks | None = None,
        declare: bool = True,
    ) -> None:
        self._declare = declare
        self._transport = transport
        self._builder = builder
        self._hooks = hooks
        self._link = _Link()
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._decoders: dict[Any, BodyDecoder] = {}
        self._procedures: dict[str, Procedure] = {}
        self._consumers: dict[str, tuple[float, int | None]] = {}  # queue -> (when, count)
        self._probes: dict[asyncio.Future[_Outcome], asyncio.Task[None]] = {}

    @property
    def in_flight(self) -> int:
        """Calls waiting for a reply now (0 after every call returned, failed or left)."""
        return len(self._link.pending)

    async def _open(self, deadline: float) -> _Link:
        async with self._open_lock:
            link = self._link
            if link.is_open:
                return link
            if self._closed:
                raise RpcError("the RPC client is closed (the app stopped)")
            link = _Link()
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            # The exchange must exist before anything is published on the reply
            # channel: a publish to a missing exchange would close the channel.
            await self._transport.wait_connected(remaining)
            await self._transport.declare_exchange(
                RPC_EXCHANGE, RPC_EXCHANGE_TYPE, passive=not self._declare
            )
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            link.channel = await self._transport.open_reply_channel(
                link.on_reply, link.on_closed, timeout=remaining
            )
            self._link = link
            return link

    async def call(
        self,
        procedure: str,
        payload: Any = None,
        *,
        timeout: float,
        returns: Any = None,
        headers: dict[str, Any] | None = None,
        content_type: str | None = None,
        compress: str | None = None,
    ) -> Any:
        """Call ``procedure`` and return its reply (see :meth:`_call`); counted by the
        instruments when there are any."""
        hooks = self._hooks
        if hooks is None:
            return await self._call(
                procedure,
                payload,
                timeout=timeout,
                returns=returns,
                headers=headers,
                content_type=content_type,
                compress=compress,
            )
        started = time.perf_counter()
        outcome = "lost"
        try:
            result = await self._call(
                procedure,
                payload,
                timeout=timeout,
                returns=returns,
                headers=headers,
                content_type=content_type,
                compress=compress,
            )
            outcome = "ok"
            return result
        except NoRoute:
            outcome = "no_route"
            raise
        except RpcTimeout:
            outcome = "timeout"
            raise
        except RemoteError:
            outcome = "remote_error"
            raise
        finally:
            hooks.called(procedure, outcome, time.perf_counter() - started)

    async def _call(
        self,
        procedure: str,
        payload: Any = None,
        *,
        timeout: float,
        returns: Any = None,
        headers: dict[str, Any] | None = None,
        content_type: str | None = None,
        compress: str | None = None,
    ) -> Any:
        """Call ``procedure`` and return its reply.

        Args:
            procedure: ``"<service>.<method>"``.
            payload: the request: a pydantic model, JSON-able data, ``str`` or ``bytes``.
            timeout: seconds to wait for the reply, publishing included.
            returns: the type to decode the reply to (a model, any type pydantic
                validates); ``None`` gives plain JSON data (``str`` for text replies,
                ``bytes`` for binary ones).
            headers: extra AMQP headers for the request.
            content_type: encode the request with this content type's codec (the
                server answers in kind, unless its codecs lack it).
            compress: ``"gzip"`` or ``"deflate"``: compress the request (and so the
                reply).

        Returns:
            The decoded reply.

        Raises:
            NoRoute: no server is bound for the procedure's service.
            RpcTimeout: no reply within ``timeout``.
            RemoteError: the server answered with an error (the handler raised, the
                request did not validate, or the service has no such method).
            ConnectionLost: the connection dropped before the reply came.
            EncodeError: the payload cannot be encoded.
            DecodeError: the reply does not decode to ``returns``.
        """
        proc = self._procedures.get(procedure)
        if proc is None:
            proc = Procedure.parse(procedure)
            if len(self._procedures) < 10_000:
                self._procedures[procedure] = proc
        if timeout <= 0:
            raise ConfigurationError(f"call timeout must be positive, got {timeout!r}")
        decode = None
        if returns is not None:
            decode = self._decoders.get(returns)
            if decode is None:
                decode = self._decoders[returns] = self._builder.codecs.decoder(returns)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        correlation_id = new_id()
        request_headers = dict(headers) if headers else {}
        request_headers[HEADER_DEADLINE] = now_ms() + int(timeout * 1000)
        body, properties = self._builder.request(
            payload,
            correlation_id=correlation_id,
            expires_in=timeout,
            headers=request_headers,
            content_type=content_type,
            compress=compress,
        )
        try:
            link = self._link
            if not link.is_open:
                async with asyncio.timeout_at(deadline):
                    link = await self._open(deadline)
            channel = link.channel
            assert channel is not None
            future: asyncio.Future[_Outcome] = loop.create_future()
            pending = link.pending
            pending[correlation_id] = future
            # One timer per call, cheaper than a timeout scope around the whole call; a
            # call still waiting after PROBE_AFTER asks whether anything serves it.
            timer = loop.call_at(deadline, _expire, future)
            probe = loop.call_later(PROBE_AFTER, self._probe, proc.queue, future)
            try:
                remaining = deadline - loop.time()
                if self._hooks is not None and self._hooks.traces:
                    with self._hooks.tracing_publish(RPC_EXCHANGE, procedure, properties):
                        await channel.publish(
                            RPC_EXCHANGE,
                            procedure,
                            body,
                            properties,
                            mandatory=True,
                            timeout=remaining,
                        )
                else:
                    await channel.publish(
                        RPC_EXCHANGE, procedure, body, properties, mandatory=True, timeout=remaining
                    )
                reply = await future
                if reply is None:
                    raise TimeoutError
            finally:
                timer.cancel()
                probe.cancel()
                del pending[correlation_id]
                asking = self._probes.pop(future, None)
                if asking is not None:
                    asking.cancel()
        except Unroutable:
            raise NoRoute(
                f"no server is bound for {procedure}: nothing serves service "
                f"{proc.service!r} (the request was returned by the broker)",
                exchange=RPC_EXCHANGE,
                routing_key=procedure,
            ) from None
        except (TimeoutError, PublishError) as exc:
            if isinstance(exc, PublishError) and loop.time() < deadline:
                raise  # a nack, not the publish confirm timing out
            raise RpcTimeout(
                f"no reply from {procedure} within {timeout:g}s",
                procedure=procedure,
                correlation_id=correlation_id,
                timeout=timeout,
            ) from None
        except ConnectionLost as exc:
            raise ConnectionLost(f"{procedure} was not sent: {exc}") from None
        if type(reply) is _Unserved:
            raise NoServer(
                f"nothing serves {procedure}: the queue {reply.queue!r} of service "
                f"{proc.service!r} exists, but no server consumes it",
                exchange=RPC_EXCHANGE,
                routing_key=procedure,
            )
        if type(reply) is _Lost:
            raise ConnectionLost(
                f"the connection was lost while {procedure} waited for its reply "
                f"({reply.reason}); the request may have run and is not resent"
            )
        assert not isinstance(reply, _Lost | _Unserved)
        assert reply is not None
        if reply.properties.type == ERROR_TYPE:
            raise decode_error(reply.body, procedure=procedure, correlation_id=correlation_id)
        props = reply.properties
        if decode is None:
            return self._builder.codecs.decode_plain(
                reply.body, props.content_type, props.content_encoding
            )
        return decode(reply.body, props.content_type, props.content_encoding)

    def _probe(self, queue: str, future: asyncio.Future[_Outcome]) -> None:
        if future.done():
            return
        self._probes[future] = asyncio.get_running_loop().create_task(
            self._ask(queue, future), name=f"burrowmq-rpc-probe:{queue}"
        )

    async def _ask(self, queue: str, future: asyncio.Future[_Outcome]) -> None:
        """Whether anything consumes ``queue``; if nothing does, end the call with NoServer.

        One question per service queue and second at most: calls answered within
        PROBE_AFTER never ask, and a busy service is asked about once a second.
        """
        loop = asyncio.get_running_loop()
        asked = self._consumers.get(queue)
        if asked is None or loop.time() - asked[0] > _PROBE_KEPT:
            try:
                count = await self._transport.consumer_count(queue)
            except BurrowError:
                return  # no answer: the call waits for its reply or its timeout
            asked = self._consumers[queue] = (loop.time(), count)
            if len(self._consumers) > 10_000:
                self._consumers.clear()
        if asked[1] == 0 and not future.done():
            future.set_result(_Unserved(queue))

    async def close(self) -> None:
        """Fail the calls still waiting, close the reply channel; idempotent."""
        self._closed = True
        for task in self._probes.values():
            task.cancel()
        link = self._link
        link.on_closed("the app is stopping")
        if link.channel is not None:
            await link.channel.close()
