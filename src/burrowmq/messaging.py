"""Messaging: what a running App sends — publishes, batches of them, and RPC calls.

The base class of :class:`~burrowmq.App` holding its publish and call facades, apart from
its lifecycle; :class:`AppState` is the lifecycle's states.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, overload

from burrowmq.exceptions import ConfigurationError, StateError
from burrowmq.framework.compression import check_compress
from burrowmq.framework.transport import Transport
from burrowmq.routing.delay import delay_seconds
from burrowmq.routing.depends import RunningApp
from burrowmq.routing.route import Route, rpc_target
from burrowmq.rpc.client import RpcClient
from burrowmq.topology.model import Topology, partition_of

if TYPE_CHECKING:
    from burrowmq.config import AppConfig
    from burrowmq.framework.builder import MessageBuilder
    from burrowmq.framework.instrument import Hooks
    from burrowmq.framework.publisher import Publisher
    from burrowmq.routing.forwarder import Delays

__all__ = ["AppState", "Messaging"]

R = TypeVar("R")


class AppState(str, Enum):
    """Where an App is in its life: new, starting, running, stopping, closed."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


class Messaging(RunningApp):
    """Publishing and calling, for :class:`~burrowmq.App` (which sets the state they use)."""

    config: AppConfig
    _state: AppState
    _transport: Transport | None
    _publisher: Publisher | None
    _delays: Delays | None
    _rpc_client: RpcClient | None
    _builder: MessageBuilder
    _hooks: Hooks | None
    _topology: Topology | None

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route of the app's routers (the App defines it)."""
        raise NotImplementedError

    def _require_running(self, what: str) -> Transport:
        if self._state is not AppState.RUNNING or self._transport is None:
            raise StateError(f"cannot {what}: the app is {self._state.value}, not running")
        return self._transport

    async def publish(
        self,
        exchange: str,
        body: Any,
        *,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = False,
        persistent: bool = True,
        message_id: str | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        content_type: str | None = None,
        compress: str | None = None,
        timeout: float | None = None,
        delay: float | timedelta | None = None,
        partition_key: str | None = None,
    ) -> str:
        """Publish a message and wait until the broker confirmed it.

        Args:
            exchange: the exchange (``""`` is the default exchange: routing_key names
                the queue).
            body: a pydantic model or JSON-able value (sent as JSON, or in the
                ``content_type`` given), ``str`` (text) or ``bytes`` (as is).
            routing_key: the routing key.
            headers: AMQP headers.
            mandatory: raise :class:`~burrowmq.Unroutable` if no queue takes it.
            persistent: survive a broker restart (delivery mode 2).
            message_id: the message id (default: a new unique id).
            correlation_id: the correlation id.
            reply_to: where replies go.
            expiration: seconds after which the broker may discard it.
            priority: the message priority.
            content_type: the content type; a value that is not ``bytes`` or ``str``
                is encoded by the codec that handles it (``"application/msgpack"``, or
                one of ``App(codecs=...)``; JSON when none does); ``bytes`` and ``str``
                go as they are, labelled with it.
            compress: ``"gzip"`` or ``"deflate"``: compress the body and set
                ``content_encoding`` (consumers decompress it before decoding).
            timeout: seconds to wait for the confirm (default: no limit).
            delay: seconds or a timedelta: deliver it that much later, to the second
                (rounded to the nearest, up to 8.5 years), through the broker's delay
                ladder; confirmed once the ladder holds it.
            partition_key: to a super stream (``Stream(exchange, partitions=N)`` in the
                app's topology): the partition this key hashes to, as RabbitMQ's stream
                clients hash it (so all producers agree); instead of ``routing_key``.

        Returns:
            The message id.

        Raises:
            StateError: the app is not running.
            ConfigurationError: a bad ``delay``, or ``delay`` with ``mandatory`` or
                ``expiration`` (neither can hold across the wait); ``partition_key``
                with ``routing_key``, or to an exchange that is no super stream in the
                app's topology.
            EncodeError: the body cannot be encoded.
            Unroutable: ``mandatory`` and nothing is bound.
            PublishNacked: the broker refused it.
            PublishError: a header AMQP cannot carry, or the broker refused the publish.
            ConnectionLost: the connection dropped before the confirm.
        """
        self._require_running("publish")
        assert self._publisher is not None
        if partition_key is not None:
            routing_key = self._partition_route(exchange, partition_key, routing_key)
        if delay is not None and (seconds := delay_seconds(delay)):
            if mandatory or expiration is not None:
                raise ConfigurationError(
                    "publish(delay=...) cannot take mandatory= or expiration=: neither "
                    "can be checked across the wait"
                )
            assert self._delays is not None
            exchange, routing_key, headers = await self._delays.address(
                exchange, routing_key, headers, seconds
            )
            mandatory = True  # the ladder must take it
        return await self._publisher.publish(
            exchange,
            body,
            routing_key=routing_key,
            mandatory=mandatory,
            timeout=timeout,
            headers=headers,
            persistent=persistent,
            message_id=message_id,
            correlation_id=correlation_id,
            reply_to=reply_to,
            expiration=expiration,
            priority=priority,
            content_type=content_type,
            compress=check_compress(compress, "publish"),
        )

    def _partition_route(self, exchange: str, key: str, routing_key: str) -> str:
        """The routing key of the partition of ``exchange`` that ``key`` goes to."""
        if not isinstance(key, str):
            raise ConfigurationError(f"publish(partition_key=...) takes a str, got {key!r}")
        if routing_key:
            raise ConfigurationError(
                f"publish() to {exchange!r} takes routing_key= or partition_key=, not both"
            )
        keys = self._topology.partition_keys(exchange) if self._topology is not None else ()
        if not keys:
            raise ConfigurationError(
                f"publish(partition_key=...): exchange {exchange!r} is not a partitioned "
                f"stream in this app's topology (declare Stream({exchange!r}, partitions=N) "
                "in it, or queues: [{name: ..., partitions: N}] in its YAML)"
            )
        return keys[partition_of(key, len(keys))]

    async def publish_many(
        self,
        exchange: str,
        bodies: Iterable[Any],
        *,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = False,
        persistent: bool = True,
        content_type: str | None = None,
        compress: str | None = None,
        window: int = 256,
        timeout: float | None = None,
    ) -> list[str]:
        """Publish many messages at once, with up to ``window`` confirms outstanding.

        Much faster than awaiting :meth:`publish` in a loop; every message is still
        confirmed before the call returns. Arguments are those of :meth:`publish`.

        Returns:
            The message ids, in order.

        Raises:
            StateError: the app is not running.
            ConfigurationError: ``window`` is not a positive int.
            PublishBatchError: some messages were not confirmed (``failures`` lists
                them by index; the others were confirmed).
        """
        self._require_running("publish")
        assert self._publisher is not None
        return await self._publisher.publish_many(
            exchange,
            bodies,
            routing_key=routing_key,
            mandatory=mandatory,
            window=window,
            timeout=timeout,
            headers=headers,
            persistent=persistent,
            content_type=content_type,
            compress=check_compress(compress, "publish_many"),
        )

    @overload
    async def call(
        self,
        procedure: Callable[..., Awaitable[R]],
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> R: ...
    @overload
    async def call(
        self,
        procedure: str | Callable[..., Awaitable[Any]],
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: type[R],
        headers: Mapping[str, Any] | None = None,
    ) -> R: ...
    @overload
    async def call(
        self,
        procedure: str | Callable[..., Awaitable[Any]],
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Any: ...
    async def call(
        self,
        procedure: str | Callable[..., Awaitable[Any]],
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: Any = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        compress: str | None = None,
    ) -> Any:
        """Call a remote procedure and wait for its reply.

        Any number of calls may run at once; the first opens this app's reply channel
        (direct reply-to).

        Args:
            procedure: ``"<service>.<method>"``, as given to ``router.rpc``, or the
                decorated RPC handler itself when this app's routers hold it (the
                reply is then decoded as its return annotation, and typed so).
            payload: the request: a pydantic model, JSON-able data, ``str`` or ``bytes``.
            timeout: seconds to wait for the reply (default: ``App(rpc_timeout=...)``).
            returns: the type to decode the reply to (a pydantic model, or any type
                pydantic validates); ``None`` gives plain JSON data (or, for a handler,
                its return annotation).
            headers: extra AMQP headers for the request.
            content_type: encode the request with this content type's codec, as
                :meth:`publish` does; a burrowmq server replies in the same one.
            compress: ``"gzip"`` or ``"deflate"``: compress the request; a burrowmq
                server compresses its reply alike.

        Returns:
            The reply, decoded.

        Raises:
            StateError: the app is not running.
            ConfigurationError: a malformed procedure name or timeout, or a handler
                that is not an RPC route of this app.
            NoRoute: nothing serves the procedure's service (raised at once).
            RpcTimeout: no reply within ``timeout``.
            RemoteError: the server answered with an error (the handler raised, the
                request did not validate, or the service lacks the method).
            ConnectionLost: the connection dropped before the reply came; the call is
                not resent.
            EncodeError: the payload cannot be encoded.
            DecodeError: the reply does not fit ``returns``.
        """
        if not isinstance(procedure, str):
            procedure, annotated = rpc_target(self.routes, procedure)
            returns = annotated if returns is None else returns
        client = self._rpc_client
        if client is None or self._state is not AppState.RUNNING:
            transport = self._require_running("call")
            client = self._rpc_client = RpcClient(
                transport, self._builder, hooks=self._hooks, declare=self.config.declare
            )
        return await client.call(
            procedure,
            payload,
            timeout=self.config.rpc_timeout if timeout is None else timeout,
            returns=returns,
            headers=dict(headers) if headers else None,
            content_type=content_type,
            compress=check_compress(compress, "call"),
        )
