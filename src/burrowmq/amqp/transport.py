"""The AMQP transport: RabbitMQ through aio-pika and aiormq.

With its siblings in :mod:`burrowmq.amqp` (links, consumers, publishing, wire properties,
and the one table in :mod:`~burrowmq.amqp.errors` that translates the libraries'
errors), the only code that imports aio-pika, aiormq and pamqp.

Two connections (:class:`~burrowmq.amqp.link.Link`): one consumes and declares, the
other publishes (messages, RPC requests and replies, dead-letter and retry copies), so
that a broker blocking publishers under a memory or disk alarm never stalls the acks of
consumers. Connections are opened with aio-pika (URL handling, client properties);
channels are aiormq's, used directly on the hot paths (publish, deliver, ack). Recovery
is ours rather than aio-pika's robust connection, because a list of URLs (cluster nodes)
must be tried in turn on every reconnect, topology must be re-declared before consumers
restart, and a delivery must never be acked on a channel it did not arrive on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import aiormq

from burrowmq.amqp.consumer import AmqpReplyChannel, AmqpSubscription
from burrowmq.amqp.errors import (
    CHANNEL,
    CONSUME,
    DECLARE,
    RECOVERY_ERRORS,
    Context,
    describe_exc,
    fail,
)
from burrowmq.amqp.lean import LeanPublisher
from burrowmq.amqp.link import Link
from burrowmq.amqp.publishing import InFlight, publish_confirmed
from burrowmq.amqp.receive import install as install_receive_path
from burrowmq.amqp.reply_check import ReplyCheck
from burrowmq.exceptions import PublishError, TopologyError
from burrowmq.framework.clock import Clock, SystemClock
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import (
    ConsumerArguments,
    DeliveryCallback,
    Properties,
    ReadyCallback,
    ReplyClosedCallback,
)
from burrowmq.framework.vocabulary import (
    DIRECT_REPLY_TO,
    RESERVED_PREFIX,
    header_problem,
    unencodable,
)

__all__ = ["AmqpTransport"]

_log = get_logger()
install_receive_path()  # frames read and decoded on the lean path (where checked)
_SYSTEM_CLOCK = SystemClock()
_KNOWN_EXCHANGES = 10_000


class AmqpTransport:
    """RabbitMQ over two connections, with confirms, recovery and translated errors.

    Args:
        urls: broker URLs; each (re)connection tries them in turn.
        connection_name: shown in the management UI (with ``(consume)`` and
            ``(publish)`` after it).
        connect_timeout: seconds allowed for one connection attempt.
        recovery_wait: how long a publish or declaration waits for a lost connection
            to come back before it raises :class:`ConnectionLost`.
        ssl_context: TLS for ``amqps://`` URLs (default: the system's trusted CAs).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        connection_name: str | None = None,
        connect_timeout: float = 5.0,
        recovery_wait: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._recovery_wait = recovery_wait
        self._consuming = Link(
            urls,
            role="consume",
            connection_name=connection_name,
            connect_timeout=connect_timeout,
            on_up=self._consumer_up,
            on_down=self._consumer_down,
            ssl_context=ssl_context,
        )
        self._publishing = Link(
            urls,
            role="publish",
            connection_name=connection_name,
            connect_timeout=connect_timeout,
            on_up=self._publisher_up,
            on_down=self._publisher_down,
            ssl_context=ssl_context,
        )
        self._declare_channel: aiormq.abc.AbstractChannel | None = None
        self._publish_channel: aiormq.abc.AbstractChannel | None = None
        # Publishes on the publishing channel, where aiormq allows (None: basic_publish).
        self._lean: LeanPublisher | None = None
        self._ready_callbacks: list[ReadyCallback] = []
        self._subscriptions: list[AmqpSubscription] = []
        self._closing = False
        self._restores: set[asyncio.Task[None]] = set()
        self._in_flight = InFlight()
        self._channel_lock = asyncio.Lock()
        # Exchanges seen to exist: a publish to one not seen yet is checked first, so
        # that a missing exchange fails that publish alone (AMQP would close the shared
        # publishing channel, failing every publish in flight beside it).
        self._exchanges: OrderedDict[str, None] = OrderedDict()
        self._checks: dict[str, asyncio.Future[None]] = {}
        self._reply_check = ReplyCheck(
            urls,
            connection_name=connection_name,
            connect_timeout=connect_timeout,
            ssl_context=ssl_context,
        )

    @property
    def clock(self) -> Clock:
        """The real time: the broker's TTLs run on it."""
        return _SYSTEM_CLOCK

    @property
    def description(self) -> str:
        return self._consuming.description

    @property
    def node(self) -> str | None:
        """The node connected to last (``host:port (vhost) as user``; no password)."""
        return self._consuming.node

    @property
    def is_connected(self) -> bool:
        return self._consuming.connected.is_set() and self._publishing.connected.is_set()

    @property
    def blocked(self) -> str | None:
        """Why the broker blocks publishing now (a memory or disk alarm), or ``None``."""
        return self._publishing.blocked

    def on_ready(self, callback: ReadyCallback) -> None:
        self._ready_callbacks.append(callback)

    # -- connections -------------------------------------------------------------

    async def connect(self) -> None:
        self._closing = False
        await self._consuming.connect()
        try:
            await self._publishing.connect()
        except BaseException:
            await self._consuming.close()
            raise

    async def _consumer_up(self, raw: aiormq.abc.AbstractConnection) -> None:
        self._declare_channel = await _open_channel(raw, confirms=False)
        for callback in self._ready_callbacks:
            await callback()
        for subscription in list(self._subscriptions):
            if subscription.active:
                await subscription.start(raw)

    def _consumer_down(self) -> None:
        self._declare_channel = None
        for subscription in self._subscriptions:
            subscription.connection_lost()

    async def _publisher_up(self, raw: aiormq.abc.AbstractConnection) -> None:
        self._publish_channel = await _open_channel(raw, confirms=True)
        self._lean = LeanPublisher.of(self._publish_channel)

    def _publisher_down(self) -> None:
        self._publish_channel = None
        self._lean = None
        self._in_flight.fail_all()

    async def wait_connected(self, timeout: float) -> None:
        await self._consuming.wait(timeout)
        await self._publishing.wait(timeout)

    async def close(self) -> None:
        self._closing = True
        for task in list(self._restores):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subscription in list(self._subscriptions):
            await subscription.close()
        await self._reply_check.close()
        await self._publishing.close()
        await self._consuming.close()

    def _restore_later(self, subscription: AmqpSubscription) -> None:
        """Re-declare the topology and restart a consumer whose channel the broker ended."""
        if self._closing:
            return
        task = asyncio.get_running_loop().create_task(
            self._restore(subscription), name=f"burrowmq-resubscribe:{subscription.queue}"
        )
        self._restores.add(task)
        task.add_done_callback(self._restores.discard)

    async def _restore(self, subscription: AmqpSubscription) -> None:
        delay = 0.5
        while subscription.active and not self._closing:
            try:
                await self._consuming.wait(self._recovery_wait)
                if subscription.consuming:
                    return  # the connection's recovery restarted it already
                for callback in self._ready_callbacks:
                    await callback()
                await subscription.start(self._consuming.raw)
            except RECOVERY_ERRORS as exc:
                _log.warning(
                    "consumer_restore_failed", queue=subscription.queue, reason=describe_exc(exc)
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            _log.info("consumer_restored", queue=subscription.queue)
            return

    def _forget(self, subscription: AmqpSubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    async def _channel(self, which: str, link: Link) -> aiormq.abc.AbstractChannel:
        """The declaration or publishing channel, reopened if the broker closed it."""
        channel: aiormq.abc.AbstractChannel | None = getattr(self, which)
        if channel is not None and not channel.is_closed:
            return channel
        await link.wait(self._recovery_wait)
        async with self._channel_lock:
            channel = getattr(self, which)
            if channel is not None and not channel.is_closed:
                return channel
            channel = await _open_channel(link.raw, confirms=which == "_publish_channel")
            setattr(self, which, channel)
            if which == "_publish_channel":
                self._lean = LeanPublisher.of(channel)
            return channel

    # -- declarations ------------------------------------------------------------

    async def _declare(self, entity: str, method: Any, **kwargs: Any) -> Any:
        channel = await self._channel("_declare_channel", self._consuming)
        try:
            return await getattr(channel, method)(**kwargs)
        except Exception as exc:
            fail(exc, Context(DECLARE, entity, requested=kwargs))

    async def declare_exchange(
        self,
        name: str,
        type: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
    ) -> None:
        if name == "" or name.startswith(RESERVED_PREFIX):
            return  # predeclared by the broker, may not be redeclared
        await self._declare(
            f"exchange {name!r}",
            "exchange_declare",
            exchange=name,
            exchange_type=type,
            passive=passive,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=dict(arguments or {}),
        )

    async def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
    ) -> str:
        ok = await self._declare(
            f"queue {name!r}",
            "queue_declare",
            queue=name,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=dict(arguments or {}),
        )
        return str(ok.queue)

    async def bind_queue(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        await self._declare(
            f"binding of queue {queue!r} to exchange {exchange!r} ({routing_key!r})",
            "queue_bind",
            queue=queue,
            exchange=exchange,
            routing_key=routing_key,
            arguments=dict(arguments or {}),
        )

    async def bind_exchange(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        await self._declare(
            f"binding of exchange {destination!r} to exchange {source!r} ({routing_key!r})",
            "exchange_bind",
            destination=destination,
            source=source,
            routing_key=routing_key,
            arguments=dict(arguments or {}),
        )

    async def consumer_count(self, queue: str) -> int | None:
        try:
            ok = await self._declare(f"queue {queue!r}", "queue_declare", queue=queue, passive=True)
        except TopologyError:
            return None  # not found (the declaration channel is reopened on next use)
        return int(ok.consumer_count or 0)

    async def message_count(self, queue: str) -> int | None:
        try:
            ok = await self._declare(f"queue {queue!r}", "queue_declare", queue=queue, passive=True)
        except TopologyError:
            return None
        return int(ok.message_count or 0)

    async def purge_queue(self, name: str) -> int:
        ok = await self._declare(f"queue {name!r}", "queue_purge", queue=name)
        return int(ok.message_count or 0)

    async def delete_queue(self, name: str) -> None:
        await self._declare(f"queue {name!r}", "queue_delete", queue=name)
        self._exchanges.pop(name, None)

    async def delete_exchange(self, name: str) -> None:
        await self._declare(f"exchange {name!r}", "exchange_delete", exchange=name)
        self._exchanges.pop(name, None)

    # -- publishing --------------------------------------------------------------

    async def _check_exchange(self, exchange: str) -> None:
        """Make sure ``exchange`` exists before a first publish to it (one check at a time)."""
        pending = self._checks.get(exchange)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._checks[exchange] = future
        try:
            await self._declare(
                f"exchange {exchange!r}",
                "exchange_declare",
                exchange=exchange,
                exchange_type="direct",  # ignored by a passive declaration
                passive=True,
            )
        except TopologyError as exc:
            error = PublishError(
                f"cannot publish to exchange {exchange!r}: it does not exist ({exc})",
                exchange=exchange,
            )
            future.set_exception(error)
            future.exception()  # retrieved here: waiters raise their own copy
            raise error from exc
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            future.exception()
            raise
        else:
            future.set_result(None)
            self._exchanges[exchange] = None
            if len(self._exchanges) > _KNOWN_EXCHANGES:
                self._exchanges.popitem(last=False)
        finally:
            del self._checks[exchange]

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        *,
        mandatory: bool = False,
        timeout: float | None = None,
    ) -> None:
        if properties.headers and (problem := header_problem(properties.headers)) is not None:
            # Checked before pamqp, which silently cuts names longer than 128 bytes.
            raise unencodable(exchange, routing_key, properties.headers, problem)
        if (
            exchange
            and exchange not in self._exchanges
            and not exchange.startswith(RESERVED_PREFIX)
        ):
            await self._check_exchange(exchange)
        if (
            not exchange
            and routing_key.startswith(DIRECT_REPLY_TO)
            and self._publishing.broker_version < (4,)
            and self._reply_check.needed(routing_key)
        ):
            await self._reply_check.publish(routing_key, body, properties, timeout=timeout)
            return
        channel = self._publish_channel
        if channel is None or channel.is_closed or not self._publishing.connected.is_set():
            channel = await self._channel("_publish_channel", self._publishing)
        lean = self._lean
        if lean is not None and lean.channel is not channel:
            lean = None  # not this channel's (it was just replaced)
        try:
            await self._in_flight.run(
                publish_confirmed(
                    channel, exchange, routing_key, body, properties, mandatory, timeout, lean
                ),
                f"a message for exchange {exchange!r}, routing key {routing_key!r}",
            )
        except PublishError as exc:
            if "NOT_FOUND" in str(exc):
                self._exchanges.pop(exchange, None)  # deleted since: check it again next time
            blocked = self._publishing.blocked
            if blocked is not None and "did not confirm" in str(exc):
                raise PublishError(
                    f"{exc}: the broker has blocked publishing on this connection ({blocked}): "
                    "a memory or disk alarm; publishing resumes when it clears",
                    exchange=exchange,
                    routing_key=routing_key,
                ) from exc
            raise

    # -- consuming ---------------------------------------------------------------

    async def consume(
        self,
        queue: str,
        callback: DeliveryCallback,
        *,
        prefetch: int,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: ConsumerArguments | None = None,
    ) -> AmqpSubscription:
        await self._consuming.wait(self._recovery_wait)
        subscription = AmqpSubscription(
            queue,
            callback,
            prefetch=prefetch,
            no_ack=no_ack,
            exclusive=exclusive,
            arguments=arguments,
            on_cancelled=self._restore_later,
            on_closed=self._forget,
        )
        try:
            await subscription.start(self._consuming.raw)
        except Exception as exc:
            fail(exc, Context(CONSUME, f"queue {queue!r}"))
        self._subscriptions.append(subscription)
        return subscription

    async def open_reply_channel(
        self,
        callback: DeliveryCallback,
        on_closed: ReplyClosedCallback,
        *,
        timeout: float,
    ) -> AmqpReplyChannel:
        # On the publishing connection: a reply channel publishes the requests.
        await self._publishing.wait(timeout)
        channel = await _open_channel(self._publishing.raw, confirms=True)
        reply = AmqpReplyChannel(channel, callback, on_closed)
        try:
            await reply.start()
        except Exception as exc:
            await reply.close()
            fail(exc, Context(CONSUME, DIRECT_REPLY_TO))
        return reply


async def _open_channel(
    connection: aiormq.abc.AbstractConnection, *, confirms: bool
) -> aiormq.abc.AbstractChannel:
    """A new channel, with publisher confirms (and returns raised) when asked."""
    try:
        if confirms:
            return await connection.channel(publisher_confirms=True, on_return_raises=True)
        return await connection.channel(publisher_confirms=False)
    except Exception as exc:
        fail(exc, Context(CHANNEL, "on the connection"))
