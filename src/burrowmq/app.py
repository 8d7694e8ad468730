"""App: the composition root — its frozen settings, its lifecycle, and the facades.

The App joins what the packages below it provide (routing, rpc, topology and a
transport) and holds nothing else: routes come from its routers, topology merging from
:mod:`burrowmq.topology`, consumers from :mod:`burrowmq.routing.consumers` and
:mod:`burrowmq.rpc.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from burrowmq.config import AppConfig, Setting, make_transport
from burrowmq.exceptions import ConfigurationError, LifespanError, StateError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.codec import Codec
from burrowmq.framework.codecs import Codecs
from burrowmq.framework.compression import DEFAULT_MAX_DECOMPRESSED_SIZE
from burrowmq.framework.instrument import Hooks, Instrument, compose_instruments
from burrowmq.framework.lifespan import Lifespan
from burrowmq.framework.log import get_logger
from burrowmq.framework.middleware import Middleware, check_middleware, compose
from burrowmq.framework.publisher import Publisher
from burrowmq.framework.tls import TLS
from burrowmq.framework.transport import Transport
from burrowmq.framework.urls import default_urls
from burrowmq.instrumentation.health import ConsumerHealth, Health
from burrowmq.messaging import AppState, Messaging
from burrowmq.routing.consumers import ConsumerSettings, message_consumer
from burrowmq.routing.declarations import (
    check_queues_exist,
    routes_topology,
    undeclared_queues,
    verify_topology,
)
from burrowmq.routing.delay import OUTBOX
from burrowmq.routing.depends import Injection
from burrowmq.routing.dispatch import Consumer
from burrowmq.routing.forwarder import Delays
from burrowmq.routing.redelivery import DEFAULT_MAX_REDELIVERIES
from burrowmq.routing.retry import DEFAULT_RETRY, Retry
from burrowmq.routing.route import Route
from burrowmq.routing.router import Router
from burrowmq.routing.schedule import Schedule
from burrowmq.routing.scheduler import Scheduler, schedule_queue
from burrowmq.rpc.client import RpcClient
from burrowmq.rpc.server import rpc_servers
from burrowmq.topology.apply import declare_topology
from burrowmq.topology.loader import merge_with
from burrowmq.topology.model import Topology

__all__ = ["App", "AppConfig", "AppState"]

_log = get_logger()

R = TypeVar("R")


class App(Messaging):
    """A service: its routes, its connection, its lifecycle.

    ``async with app:`` connects, declares the topology and starts consuming; leaving the
    block stops consuming, lets in-flight handlers finish (up to ``shutdown_timeout``)
    and closes. ``app.run()`` does the same until SIGINT or SIGTERM.

    Args:
        routers: the routers whose routes this app serves (read when the app starts).
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
            every handler call, of message and RPC routes alike, the first outermost
            (see :mod:`burrowmq.framework.middleware`); e.g. ``[Idempotency()]``.
        max_redeliveries: poison-message protection: a message the broker redelivered
            more often than this without it ever being settled (it crashed or hung the
            consumer each time; quorum queues count it in ``x-delivery-count``) is
            dead-lettered instead of handled again; ``None`` turns the check off.
        connect_timeout: seconds allowed for one connection attempt.
        rpc_timeout: the default timeout of :meth:`call`, in seconds.
        rpc_tracebacks: send the handler's traceback in RPC error replies (off by
            default: tracebacks may reveal internals to callers).
        recovery_wait: while the connection is being recovered, how many seconds
            :meth:`publish` (and a dead-letter or retry publish) waits for it before
            raising :class:`~burrowmq.ConnectionLost`.
        tls: TLS settings (:class:`~burrowmq.TLS`, or an ``ssl.SSLContext``) for
            ``amqps://`` URLs; the management client of the topology tools uses them too.
        declare: declare the topology on every (re)connection; ``False`` declares
            nothing and checks at start, passively, that every exchange and queue the
            routes need exists (naming the first missing one), for a service whose
            broker user has no configure permission (``topology apply`` run by an
            operator declares the topology, delay tiers included).
        instrumentation: instruments that observe the app, e.g.
            ``[Prometheus(), OpenTelemetry()]`` from :mod:`burrowmq.instrumentation`;
            with none, nothing is measured and nothing costs.
        lifespan: an async context manager factory taking the App, as Starlette's
            (an ``@asynccontextmanager`` function): entered when the app starts,
            before it connects and consumes; exited after the drain when it stops, or
            at once when the start fails after it was entered (exited once either
            way). What it yields is :attr:`lifespan_state`. An error on entry fails
            the start with :class:`~burrowmq.LifespanError` naming the lifespan.
        dependency_overrides: factories to call in place of others, for the
            handlers' :class:`~burrowmq.Depends` (``{get_db: fake_db}``); the test
            client takes the same.
        codecs: codecs (:class:`~burrowmq.Codec`) for content types beyond the
            built-in ones (JSON, MessagePack with the ``msgpack`` extra, text, bytes),
            consulted first, in order: the first that names a content type handles it.
            A delivery whose content type no codec handles is dead-lettered.
        max_decompressed_size: the most bytes a compressed body (``content_encoding``
            gzip or deflate) may inflate to; past it the message is dead-lettered as
            a possible decompression bomb (default 64 MiB).
        transport: a transport to use instead of one made from ``url`` (tests).

    Raises:
        ConfigurationError: a bad URL or option.
    """

    name: Setting[str] = Setting()
    retry: Setting[Retry] = Setting()
    prefetch: Setting[int] = Setting()
    concurrency: Setting[int] = Setting()
    shutdown_timeout: Setting[float] = Setting()
    middleware: Setting[tuple[Middleware, ...]] = Setting()
    max_redeliveries: Setting[int | None] = Setting()
    connect_timeout: Setting[float] = Setting()
    rpc_timeout: Setting[float] = Setting()
    rpc_tracebacks: Setting[bool] = Setting()
    recovery_wait: Setting[float] = Setting()
    instrumentation: Setting[tuple[Instrument, ...]] = Setting()
    declare: Setting[bool] = Setting()

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
        instrumentation: Sequence[Instrument] = (),
        tls: TLS | ssl.SSLContext | None = None,
        declare: bool = True,
        lifespan: Callable[[App], AbstractAsyncContextManager[Any]] | None = None,
        dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
        codecs: Sequence[Codec] = (),
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
        transport: Transport | None = None,
    ) -> None:
        if isinstance(routers, Router):
            routers = [routers]
        for router in routers:
            if not isinstance(router, Router):
                raise ConfigurationError(f"App(routers=...) takes Router objects, got {router!r}")
        self._init(
            AppConfig(
                routers=tuple((router, "") for router in routers),
                urls=default_urls(url) if transport is None else (),
                topology=topology,
                name=name,
                retry=retry or DEFAULT_RETRY,
                prefetch=prefetch,
                concurrency=concurrency,
                shutdown_timeout=shutdown_timeout,
                middleware=check_middleware(middleware),
                max_redeliveries=max_redeliveries,
                connect_timeout=connect_timeout,
                rpc_timeout=rpc_timeout,
                rpc_tracebacks=rpc_tracebacks,
                recovery_wait=recovery_wait,
                instrumentation=tuple(instrumentation),
                tls=tls,
                declare=declare,
                lifespan=lifespan,
                dependency_overrides=dependency_overrides or {},
                codecs=Codecs(codecs, max_decompressed_size=max_decompressed_size),
                transport=transport,
            )
        )

    def _init(self, config: AppConfig) -> None:
        self.config = config
        self.instance_id = uuid.uuid4().hex[:12]
        self._state = AppState.NEW
        self._routes: tuple[Route, ...] | None = None  # frozen at start
        self._transport: Transport | None = None
        self._publisher: Publisher | None = None
        self._builder = MessageBuilder(app_id=config.name, codecs=config.codecs)
        self._consumers: list[Consumer] = []
        self._delays: Delays | None = None
        self._schedulers: list[Scheduler] = []
        self._draining_consumers: list[Consumer] = []  # during the drain, to abandon it
        self._topology: Topology | None = None
        self._rpc_client: RpcClient | None = None
        self._stop_requested: asyncio.Event | None = None
        self._draining = False
        self._stop_signal: signal.Signals | None = None
        self._hooks: Hooks | None = None
        self._lifespan: Lifespan | None = None

    # -- configuration ---------------------------------------------------------------

    def replace(self, **changes: Any) -> App:
        """A new app with this one's routers and settings, but for ``changes``.

        Args:
            **changes: fields of :class:`AppConfig` (``transport=`` runs the copy on
                another transport, as :class:`~burrowmq.testing.TestClient` does).

        Raises:
            ConfigurationError: a bad setting.
        """
        app = object.__new__(App)
        app._init(dataclasses.replace(self.config, **changes))
        return app

    @property
    def state(self) -> AppState:
        """The lifecycle state."""
        return self._state

    @property
    def lifespan_state(self) -> Any:
        """What the app's lifespan yielded, from its entry until its exit.

        (``state`` is the lifecycle state; this is the lifespan's.) Handlers reach it
        through the running app: with the test client, ``client.app``.

        Raises:
            StateError: the app has no lifespan, or it is not entered (the app has not
                started, or has stopped).
        """
        lifespan = self._lifespan
        if lifespan is None or not lifespan.entered:
            if self.config.lifespan is None:
                raise StateError("the app has no lifespan (App(lifespan=...))")
            raise StateError(
                f"the lifespan state exists while the lifespan is entered; the app is "
                f"{self._state.value}"
            )
        return lifespan.state

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route this app serves (read from its routers until the app starts)."""
        if self._routes is not None:
            return self._routes
        return tuple(
            route.with_prefix(prefix)
            for router, prefix in self.config.routers
            for route in router.routes
        )

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        """Every schedule this app runs (on one of its instances at a time)."""
        return tuple(s for router, _ in self.config.routers for s in router.schedules)

    @property
    def transport(self) -> Transport:
        """The transport, once the app has started.

        Raises:
            StateError: the app has not started.
        """
        if self._transport is None or self._state is AppState.NEW:
            raise StateError("the app has no transport before it starts")
        return self._transport

    def _configure(self, what: str, **changes: Any) -> None:
        if self._state is not AppState.NEW:
            raise StateError(f"cannot {what} an app that is {self._state.value}")
        self.config = dataclasses.replace(self.config, **changes)

    def use_url(self, url: str | Sequence[str]) -> None:
        """Connect to ``url`` instead (the CLI's ``--url``); only before the app starts.

        Raises:
            StateError: the app has started.
            ConfigurationError: a bad URL.
        """
        self._configure("change the URL of", urls=default_urls(url), transport=None)

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        """Add a router's routes, ``prefix`` before their queue names; only before start.

        Raises:
            StateError: the app has started.
        """
        if not isinstance(router, Router):
            raise ConfigurationError(f"include_router() takes a Router, got {router!r}")
        self._configure("add routes to", routers=(*self.config.routers, (router, prefix)))

    def topology(self) -> Topology:
        """The merged topology: the YAML file's and every route's needs.

        Raises:
            TopologyError: bad YAML, or the same entity declared with different settings.
            ConfigurationError: two handlers consume the same queue.
        """
        declared = routes_topology(self.routes, self.instance_id, retry=self.config.retry)
        names: set[str] = set()
        for schedule in self.schedules:
            if schedule.name in names:
                raise ConfigurationError(f"two schedules are named {schedule.name!r}; pass name=")
            names.add(schedule.name)
            queue = schedule_queue(self.name, schedule)
            declared.add(queue, origin=f"schedule {schedule.name}")
        return merge_with(self.config.topology, declared)

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
            LifespanError: the lifespan raised on entry.
        """
        if self._state is not AppState.NEW:
            raise StateError(f"cannot start an app that is {self._state.value}")
        self._state = AppState.STARTING
        try:
            self._routes = routes = self.routes
            self._topology = topology = self.topology()
            external = undeclared_queues(routes, topology, self.instance_id)
            if self.config.lifespan is not None:
                self._lifespan = Lifespan(self.config.lifespan, self)
                await self._lifespan.enter()
            transport = self._transport = make_transport(self.config)
            hooks = self._hooks = compose_instruments(self.config.instrumentation)
            connections = 0

            async def declare() -> None:  # on every (re)connection
                nonlocal connections
                if self.config.declare:
                    await declare_topology(transport, topology)
                    await check_queues_exist(transport, external)
                else:
                    await verify_topology(transport, topology, external)
                connections += 1
                if connections > 1 and hooks is not None:
                    hooks.recovered("consume")

            transport.on_ready(declare)
            self._publisher = Publisher(transport, self._builder, hooks=hooks)
            await transport.connect()
            settings = ConsumerSettings(
                transport=transport,
                builder=self._builder,
                instance_id=self.instance_id,
                retry=self.config.retry,
                prefetch=self.config.prefetch,
                concurrency=self.config.concurrency,
                chain=compose(self.config.middleware),
                max_redeliveries=self.config.max_redeliveries,
                rpc_tracebacks=self.config.rpc_tracebacks,
                hooks=hooks,
                declare=self.config.declare,
                retry_waits=self.config.retry_waits,
                injection=Injection(self, self.config.dependency_overrides),
                codecs=self.config.codecs,
                drain=self.config.shutdown_timeout,
            )
            consumers = [message_consumer(r, settings) for r in routes if r.procedure is None]
            consumers += [server.dispatcher for server in rpc_servers(routes, settings)]
            for consumer in consumers:
                await consumer.start()
                self._consumers.append(consumer)
            self._delays = Delays(transport, self._builder, declare=self.config.declare)
            if topology.queue(OUTBOX) is not None:  # the routes use the delay ladder
                await self._delays.start()
            for schedule in self.schedules:
                scheduler = Scheduler(
                    schedule,
                    schedule_queue(self.name, schedule).name,
                    transport,
                    self._builder,
                    transport.clock,
                )
                await scheduler.start()
                self._schedulers.append(scheduler)
        except BaseException as exc:
            try:
                await self._shutdown(timeout=0, error=exc)
            except LifespanError as late:  # the start's own failure is what to raise
                _log.error("lifespan_exit_failed", app=self.name, error=str(late))
            raise
        self._state = AppState.RUNNING
        for router, _ in self.config.routers:
            # A route added to it from now on would never be consumed: refused instead.
            router._serving(+1)
        _log.info("app_started", app=self.name, broker=transport.description, routes=len(routes))

    async def stop(self) -> None:
        """Stop consuming, let in-flight handlers finish (bounded), exit the lifespan,
        close. Idempotent.

        Raises:
            LifespanError: the lifespan raised on exit (the app is closed all the same).
        """
        if self._state in (AppState.CLOSED, AppState.STOPPING):
            return
        if self._state is AppState.NEW:
            self._state = AppState.CLOSED
            return
        await self._shutdown(timeout=self.config.shutdown_timeout)

    async def _shutdown(self, *, timeout: float, error: BaseException | None = None) -> None:
        started = self._state is AppState.RUNNING  # a failed start raises; nothing stopped
        if started:
            for router, _ in self.config.routers:
                router._serving(-1)
        self._state = AppState.STOPPING
        consumers, self._consumers = self._consumers, []
        self._draining_consumers = consumers
        try:
            schedulers, self._schedulers = self._schedulers, []
            await asyncio.gather(*(s.stop(timeout) for s in schedulers))
            rpc_client, self._rpc_client = self._rpc_client, None
            if rpc_client is not None:
                await rpc_client.close()
            delays, self._delays = self._delays, None
            if delays is not None:
                await delays.stop()
            if consumers:
                await asyncio.gather(*(c.stop(timeout) for c in consumers))
        finally:
            try:
                if self._lifespan is not None:  # after the drain: handlers may use it
                    await self._lifespan.exit(error)
            finally:
                if self._transport is not None:
                    await self._transport.close()
                self._draining_consumers = []
                self._state = AppState.CLOSED
                if started:
                    _log.info("app_stopped", app=self.name)

    def request_stop(self) -> None:
        """Ask :meth:`serve` to shut down (safe to call from a signal handler).

        Readiness turns false at once, before the drain starts (as Kubernetes expects:
        the endpoint stops routing to the app, then it finishes its work).
        """
        self._draining = True
        if self._stop_requested is not None:
            self._stop_requested.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        """SIGINT or SIGTERM: the first drains; a second SIGINT (Ctrl-C) while draining
        abandons the drain (a second SIGTERM does not: an orchestrator sends one, then
        waits its grace period before SIGKILL)."""
        if self._stop_signal is None:
            self._stop_signal = sig
            self.request_stop()
        elif sig is signal.SIGINT and self._state is AppState.STOPPING:
            self._abandon_drain()

    def _abandon_drain(self) -> None:
        in_flight = {c.queue: n for c in self._draining_consumers if (n := c.abandon())}
        _log.warning(
            "shutdown_forced",
            app=self.name,
            in_flight=in_flight,
            note="the drain was abandoned; messages in flight were not acked, "
            "so the broker redelivers them",
        )

    def health(self) -> Health:
        """Whether the app lives and is ready, and the state of each consumer."""
        state = self._state
        transport = self._transport
        connected = transport is not None and state is AppState.RUNNING and transport.is_connected
        now = time.monotonic()
        consumers = tuple(
            ConsumerHealth(
                queue=c.queue,
                handler=c.name,
                consuming=c.consuming,
                in_flight=c.in_flight,
                seconds_since_delivery=None if c.last_delivery is None else now - c.last_delivery,
                recovering=state is AppState.RUNNING and not connected,
            )
            for c in self._consumers
        )
        problems: list[str] = []
        if state is not AppState.RUNNING:
            problems.append(f"the app is {state.value}")
        elif self._draining:
            problems.append("the app is shutting down")
        if state is AppState.RUNNING and not connected:
            problems.append("not connected to the broker (recovering)")
        problems += [
            f"queue {c.queue!r} ({c.handler}) is not consuming"
            for c in consumers
            if not c.consuming
        ]
        live = state in (AppState.STARTING, AppState.RUNNING, AppState.STOPPING)
        return Health(
            live=live,
            ready=not problems,
            state=state.value,
            connected=connected,
            consumers=consumers,
            problems=tuple(problems),
        )

    async def serve(self) -> None:
        """Run until SIGINT/SIGTERM or :meth:`request_stop`, then shut down gracefully.

        The drain lasts up to ``shutdown_timeout``; a second SIGINT (Ctrl-C) during it
        stops at once, leaving the messages in flight unacked for the broker to
        redeliver.
        """
        self._stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        try:
            async with self:
                await self._stop_requested.wait()
                hint = {}
                if self._stop_signal is signal.SIGINT:
                    hint = {"hint": "press Ctrl-C again to stop at once"}
                _log.info(
                    "shutdown_requested",
                    app=self.name,
                    timeout=self.config.shutdown_timeout,
                    **hint,
                )
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def run(self, *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
        """Block running the app until SIGINT or SIGTERM, then shut down gracefully.

        Args:
            loop_factory: makes the event loop (e.g. ``uvloop.new_event_loop``); default
                asyncio's own.
        """
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self.serve())

    # -- publishing and calling ------------------------------------------------------
