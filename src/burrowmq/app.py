"""App: the composition root — routers, topology, transport, consumers and lifecycle.

The App lives above ``framework``, ``routing`` and ``rpc`` (it is the one place that
joins them), so that those packages keep their one-way dependencies
(rpc -> routing -> framework).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from burrowmq.exceptions import ConfigurationError, StateError, TopologyError
from burrowmq.framework.log import get_logger
from burrowmq.framework.middleware import Middleware, check_middleware
from burrowmq.framework.publisher import Publisher
from burrowmq.framework.transport import Transport
from burrowmq.framework.urls import MEMORY_SCHEME, default_urls
from burrowmq.routing.dispatch import Consumer
from burrowmq.routing.redelivery import DEFAULT_MAX_REDELIVERIES, check_max_redeliveries
from burrowmq.routing.retry import DEFAULT_RETRY, Retry
from burrowmq.routing.route import Route
from burrowmq.routing.router import Router
from burrowmq.rpc.client import RpcClient
from burrowmq.rpc.server import rpc_servers
from burrowmq.topology.apply import declare_topology
from burrowmq.topology.loader import load_topology
from burrowmq.topology.model import Topology

__all__ = ["App", "AppState"]

_log = get_logger()


class AppState(str, Enum):
    """Where an App is in its life: new, starting, running, stopping, closed."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


def _make_transport(
    urls: tuple[str, ...], name: str, connect_timeout: float, recovery_wait: float
) -> Transport:
    if urls[0].startswith(f"{MEMORY_SCHEME}:"):
        from burrowmq.memory.transport import MemoryTransport

        return MemoryTransport.shared(urls[0])
    from burrowmq.amqp.transport import AmqpTransport

    return AmqpTransport(
        urls,
        connection_name=name,
        connect_timeout=connect_timeout,
        recovery_wait=recovery_wait,
    )


class App:
    """A service: its routes, its connection, its lifecycle.

    ``async with app:`` connects, declares the topology and starts consuming; leaving the
    block stops consuming, lets in-flight handlers finish (up to ``shutdown_timeout``)
    and closes. ``app.run()`` does the same until SIGINT or SIGTERM.

    Args:
        routers: the routers whose routes this app serves.
        url: a broker URL, a list of them (cluster nodes, tried in turn) or
            ``"memory://"``; default ``$BURROWMQ_URL``, else
            ``amqp://guest:guest@localhost:5672/``.
        topology: a YAML/definitions file, or a :class:`Topology`, merged with what the
            routes declare.
        name: the service name, shown as the connection name on the broker.
        retry: the retry policy of routes that set none (default: 3 attempts).
        prefetch: the prefetch of routes that set none.
        concurrency: the concurrency of routes that set none.
        shutdown_timeout: seconds in-flight handlers get to finish at shutdown.
        middleware: async callables ``(message, call_next) -> result`` wrapped around
            every handler call of the message routes, the first outermost (see
            :mod:`burrowmq.framework.middleware`); e.g. ``[Idempotency()]``.
        max_redeliveries: poison-message protection: a message the broker redelivered
            more often than this without it ever being settled (it crashed or hung the
            consumer each time; quorum queues count it in ``x-delivery-count``) is
            dead-lettered instead of handled again; ``None`` turns the check off.
        rpc_timeout: the default timeout of :meth:`call`, in seconds.
        rpc_tracebacks: send the handler's traceback in RPC error replies (off by
            default: tracebacks may reveal internals to callers).
        recovery_wait: while the connection is being recovered, how many seconds
            :meth:`publish` (and a dead-letter or retry publish) waits for it before
            raising :class:`~burrowmq.ConnectionLost`.
        transport: a transport to use instead of one made from ``url`` (tests).

    Raises:
        ConfigurationError: a bad URL or option.
    """

    def __init__(
        self,
        routers: Sequence[Router] = (),
        *,
        url: str | Sequence[str] | None = None,
        topology: str | Path | Topology | None = None,
        name: str = "burrowmq",
        retry: Retry | None = None,
        prefetch: int = 64,
        concurrency: int = 16,
        shutdown_timeout: float = 30.0,
        middleware: Sequence[Middleware] = (),
        max_redeliveries: int | None = DEFAULT_MAX_REDELIVERIES,
        connect_timeout: float = 5.0,
        rpc_timeout: float = 30.0,
        rpc_tracebacks: bool = False,
        recovery_wait: float = 15.0,
        transport: Transport | None = None,
    ) -> None:
        if isinstance(routers, Router):
            routers = [routers]
        for value, what in ((prefetch, "prefetch"), (concurrency, "concurrency")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"App({what}=...) must be a positive int, got {value!r}")
        self._urls = default_urls(url) if transport is None else ()
        self._router = Router()
        for router in routers:
            if not isinstance(router, Router):
                raise ConfigurationError(f"App(routers=...) takes Router objects, got {router!r}")
            self._router.include_router(router)
        self._topology_source = topology
        self.name = name
        self.retry = retry or DEFAULT_RETRY
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.shutdown_timeout = shutdown_timeout
        self.middleware = check_middleware(middleware)
        self.max_redeliveries = check_max_redeliveries(max_redeliveries)
        self.connect_timeout = connect_timeout
        if isinstance(recovery_wait, bool) or not isinstance(recovery_wait, int | float):
            raise ConfigurationError(f"App(recovery_wait=...) takes seconds, got {recovery_wait!r}")
        self.recovery_wait = max(0.0, float(recovery_wait))
        self.rpc_timeout = rpc_timeout
        self.rpc_tracebacks = rpc_tracebacks
        self._rpc_client: RpcClient | None = None
        self.instance_id = uuid.uuid4().hex[:12]
        self._transport = transport
        self._publisher: Publisher | None = None
        self._consumers: list[Consumer] = []
        self._topology: Topology | None = None
        self._external_queues: list[str] = []
        self._state = AppState.NEW
        self._stop_requested: asyncio.Event | None = None

    # -- configuration ---------------------------------------------------------------

    @property
    def state(self) -> AppState:
        """The lifecycle state."""
        return self._state

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route this app serves."""
        return self._router.routes

    @property
    def transport(self) -> Transport:
        """The transport, once the app has started.

        Raises:
            StateError: the app has not started.
        """
        if self._transport is None or self._state is AppState.NEW:
            raise StateError("the app has no transport before it starts")
        return self._transport

    def use_url(self, url: str | Sequence[str]) -> None:
        """Connect to ``url`` instead (the CLI's ``--url``); only before the app starts.

        Raises:
            StateError: the app has started.
            ConfigurationError: a bad URL.
        """
        if self._state is not AppState.NEW:
            raise StateError(f"cannot change the URL of an app that is {self._state.value}")
        self._urls = default_urls(url)
        self._transport = None

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        """Add a router's routes; only before the app starts.

        Raises:
            StateError: the app has started.
        """
        if self._state is not AppState.NEW:
            raise StateError(f"cannot add routes to an app that is {self._state.value}")
        self._router.include_router(router, prefix=prefix)

    def topology(self) -> Topology:
        """The merged topology: the YAML file's and every route's needs.

        Raises:
            TopologyError: bad YAML, or the same entity declared with different settings.
        """
        declared = Topology()
        seen: dict[str, Route] = {}
        for route in self.routes:
            queue = route.queue_name(self.instance_id)
            if queue in seen and not (route.procedure and seen[queue].procedure):
                raise ConfigurationError(
                    f"queue {queue!r} is consumed by two handlers ({seen[queue].name} and "
                    f"{route.name}); each delivery would reach only one of them"
                )
            seen[queue] = route
            declared = declared.merge(route.topology(self.instance_id))
        source = self._topology_source
        if isinstance(source, Topology):
            merged = source.merge(declared)
        elif source is not None:
            # The file may bind to queues and exchanges that only the routes declare.
            merged = load_topology(source, known=declared).merge(declared)
        else:
            merged = declared
        external = [
            route.queue_name(self.instance_id)
            for route in self.routes
            if not route.declare_queue and merged.queue(route.queue_name(self.instance_id)) is None
        ]
        self._external_queues = external
        return merged

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, declare the topology and start consuming.

        Raises:
            StateError: the app is not new.
            TopologyError: the topology is invalid or conflicts with the broker.
            BrokerUnreachable: no broker URL answered.
        """
        if self._state is not AppState.NEW:
            raise StateError(f"cannot start an app that is {self._state.value}")
        self._state = AppState.STARTING
        try:
            self._topology = self.topology()
            if self._transport is None:
                self._transport = _make_transport(
                    self._urls, self.name, self.connect_timeout, self.recovery_wait
                )
            self._transport.on_ready(self._declare)
            self._publisher = Publisher(self._transport, app_id=self.name)
            await self._transport.connect()
            for route in self.routes:
                if route.procedure is not None:
                    continue  # one RpcServer per service queue, below
                consumer = self._consumer_for(route, self._transport)
                await consumer.start()
                self._consumers.append(consumer)
            for server in rpc_servers(
                self.routes,
                queue_name=lambda route: route.queue_name(self.instance_id),
                transport=self._transport,
                prefetch=self.prefetch,
                concurrency=self.concurrency,
                tracebacks=self.rpc_tracebacks,
            ):
                await server.start()
                self._consumers.append(server)
        except BaseException:
            await self._shutdown(timeout=0)
            raise
        self._state = AppState.RUNNING
        _log.info(
            "app_started",
            app=self.name,
            broker=self._transport.description,
            routes=len(self.routes),
        )

    def _consumer_for(self, route: Route, transport: Transport) -> Consumer:
        base = route.dead_letter_base()
        factory = getattr(route, "consumer_factory", None) or Consumer
        return factory(  # type: ignore[no-any-return,unused-ignore]
            route,
            transport=transport,
            queue=route.queue_name(self.instance_id),
            retry=route.retry or self.retry,
            prefetch=route.prefetch or self.prefetch,
            concurrency=route.concurrency or self.concurrency,
            dead_letter_exchange=f"{base}.dlx" if base else None,
            middleware=self.middleware,
            max_redeliveries=self.max_redeliveries,
        )

    async def _declare(self) -> None:
        """Declare the whole topology; runs on every (re)connection."""
        assert self._topology is not None
        assert self._transport is not None
        transport = self._transport
        await declare_topology(transport, self._topology)
        for name in self._external_queues:
            try:
                await transport.declare_queue(name, passive=True)
            except TopologyError:
                raise TopologyError(
                    f"queue {name!r} is consumed but declared nowhere and does not exist on "
                    "the broker: declare it in the topology YAML, or pass queue_options= "
                    "to router.consume()",
                    entity=f"queue {name!r}",
                ) from None

    async def stop(self) -> None:
        """Stop consuming, let in-flight handlers finish (bounded), close. Idempotent."""
        if self._state in (AppState.CLOSED, AppState.STOPPING):
            return
        if self._state is AppState.NEW:
            self._state = AppState.CLOSED
            return
        await self._shutdown(timeout=self.shutdown_timeout)

    async def _shutdown(self, *, timeout: float) -> None:
        self._state = AppState.STOPPING
        consumers, self._consumers = self._consumers, []
        try:
            rpc_client, self._rpc_client = self._rpc_client, None
            if rpc_client is not None:
                await rpc_client.close()
            if consumers:
                await asyncio.gather(*(c.stop(timeout) for c in consumers))
        finally:
            if self._transport is not None:
                await self._transport.close()
            self._state = AppState.CLOSED
            _log.info("app_stopped", app=self.name)

    def request_stop(self) -> None:
        """Ask :meth:`serve` to shut down (safe to call from a signal handler)."""
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve(self) -> None:
        """Run until SIGINT/SIGTERM or :meth:`request_stop`, then shut down gracefully."""
        self._stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
        try:
            async with self:
                await self._stop_requested.wait()
                _log.info("shutdown_requested", app=self.name)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def run(self) -> None:
        """Block running the app until SIGINT or SIGTERM, then shut down gracefully."""
        asyncio.run(self.serve())

    # -- publishing ------------------------------------------------------------------

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
        timeout: float | None = None,
    ) -> str:
        """Publish a message and wait until the broker confirmed it.

        Args:
            exchange: the exchange (``""`` is the default exchange: routing_key names
                the queue).
            body: a pydantic model or JSON-able value (sent as JSON), ``str`` (text) or
                ``bytes`` (as is).
            routing_key: the routing key.
            headers: AMQP headers.
            mandatory: raise :class:`~burrowmq.Unroutable` if no queue takes it.
            persistent: survive a broker restart (delivery mode 2).
            message_id: the message id (default: a new UUID).
            correlation_id: the correlation id.
            reply_to: where replies go.
            expiration: seconds after which the broker may discard it.
            priority: the message priority.
            content_type: overrides the codec's content type.
            timeout: seconds to wait for the confirm (default: no limit).

        Returns:
            The message id.

        Raises:
            StateError: the app is not running.
            Unroutable: ``mandatory`` and nothing is bound.
            PublishNacked: the broker refused it.
            ConnectionLost: the connection dropped before the confirm.
        """
        self._require_running("publish")
        assert self._publisher is not None
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
        )

    async def publish_many(
        self,
        exchange: str,
        bodies: Iterable[Any],
        *,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        mandatory: bool = False,
        persistent: bool = True,
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
        )

    # -- remote procedure calls ------------------------------------------------------

    async def call(
        self,
        procedure: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call a remote procedure and wait for its reply.

        Any number of calls may run at once; the first opens this app's reply channel
        (direct reply-to).

        Args:
            procedure: ``"<service>.<method>"``, as given to ``router.rpc``.
            payload: the request: a pydantic model, JSON-able data, ``str`` or ``bytes``.
            timeout: seconds to wait for the reply (default: ``App(rpc_timeout=...)``).
            returns: the type to decode the reply to (a pydantic model, or any type
                pydantic validates); ``None`` gives plain JSON data.
            headers: extra AMQP headers for the request.

        Returns:
            The reply, decoded.

        Raises:
            StateError: the app is not running.
            ConfigurationError: a malformed procedure name or timeout.
            NoRoute: nothing serves the procedure's service (raised at once).
            RpcTimeout: no reply within ``timeout``.
            RemoteError: the server answered with an error (the handler raised, the
                request did not validate, or the service lacks the method).
            ConnectionLost: the connection dropped before the reply came; the call is
                not resent.
            DecodeError: the payload cannot be encoded, or the reply does not fit
                ``returns``.
        """
        client = self._rpc_client
        if client is None or self._state is not AppState.RUNNING:
            transport = self._require_running("call")
            client = self._rpc_client = RpcClient(transport, app_id=self.name)
        return await client.call(
            procedure,
            payload,
            timeout=self.rpc_timeout if timeout is None else timeout,
            returns=returns,
            headers=dict(headers) if headers else None,
        )
