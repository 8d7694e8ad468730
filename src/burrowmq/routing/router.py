"""Router: a list of routes and schedules, with decorators for each exchange type.

Decorators return the function unchanged (it stays a plain, unit-testable coroutine
function); they build a :class:`~burrowmq.routing.route.Route` and call
:meth:`Router.add_route`. Nothing is registered globally and importing a module with
routes has no side effect beyond filling its router.

The router is built in layers: :class:`~burrowmq.routing.registry.RouteRegistry` holds
the routes, schedules and settings; :class:`~burrowmq.routing.exchange_routes.ExchangeRoutes`
adds the exchange-kind and queue decorators; this module adds including another router,
and the stream, RPC and schedule decorators.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, tzinfo
from typing import TypeVar

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.vocabulary import RESERVED_PREFIX
from burrowmq.routing.exchange_routes import ExchangeRoutes
from burrowmq.routing.handler import HandlerFunc
from burrowmq.routing.offsets import Offset
from burrowmq.routing.procedure import RPC_EXCHANGE, RPC_EXCHANGE_TYPE, Procedure
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.routing.schedule import Schedule, ScheduleFunc
from burrowmq.routing.stream import StreamOptions, stream_queue
from burrowmq.topology.model import Exchange, Queue

__all__ = ["Router"]

F = TypeVar("F", bound=HandlerFunc)
S = TypeVar("S", bound=ScheduleFunc)


class Router(ExchangeRoutes):
    """An ordered collection of routes.

    Every decorator takes, keyword-only, ``retry=``, ``prefetch=``, ``concurrency=`` and
    ``timeout=`` (seconds one attempt of the handler may take: past it the handler is
    cancelled and the attempt fails with :class:`~burrowmq.HandlerTimeout`, retried
    and then dead-lettered like any failure); see :class:`~burrowmq.Route`.

    Its settings apply to every route added to it (by a decorator, :meth:`add_route` or
    :meth:`include_router`) that does not set its own.

    Args:
        prefix: put before the names of the queues its routes declare; a queue
            declared elsewhere (``consume("name")``) and per-instance queues keep
            their names, and exchanges are never renamed.
        retry: the retry policy of its message routes that set none (RPC routes never
            take a default retry: a request may not be idempotent).
        prefetch: the prefetch of its routes that set none.
        concurrency: the concurrency of its routes that set none.
    """

    def include_router(
        self,
        other: Router,
        *,
        prefix: str = "",
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Add every route of ``other``, as :meth:`add_route` would.

        Args:
            other: the router whose routes are added (as they are now).
            prefix: put before the names of the queues the included routes declare,
                after ``other``'s own prefix and before this router's.
            retry: the retry policy of included message routes that set none (then
                this router's applies).
            prefetch: the prefetch of included routes that set none.
            concurrency: the concurrency of included routes that set none.

        Raises:
            ConfigurationError: a router including itself.
        """
        if other is self:
            raise ConfigurationError("a router cannot include itself")
        for route in other.routes:
            self.add_route(
                route.with_defaults(
                    retry=retry, prefetch=prefetch, concurrency=concurrency
                ).with_prefix(prefix)
            )
        for schedule in other.schedules:
            self.add_schedule(schedule)
        other._included_in.append(self)  # later additions to it would be lost: refused

    def schedule(
        self,
        *,
        every: timedelta | float | None = None,
        cron: str | None = None,
        name: str | None = None,
        tz: str | tzinfo = "UTC",
    ) -> Callable[[S], S]:
        """Run an async function without arguments periodically, on one instance at a time.

        ``@router.schedule(every=timedelta(minutes=5))`` or ``cron="*/5 * * * *"``. Every
        instance of the service competes; the broker makes one the leader, and another
        takes over within seconds when it dies. A tick is never run twice; ticks missed
        while no instance ran are coalesced into one run at takeover
        (:mod:`burrowmq.routing.scheduler`).

        Args:
            every: the interval (ticks at its multiples since the epoch, UTC).
            cron: a five-field cron expression instead, read in ``tz``.
            name: the schedule's name (its queue is ``<app name>.schedule.<name>``);
                default: the function's name.
            tz: the time zone of ``cron`` (a zoneinfo name); default UTC.

        Raises:
            ConfigurationError: neither or both of ``every`` and ``cron``, an invalid
                cron expression or time zone, or a function that is not async or
                takes arguments.
        """

        def decorator(func: S) -> S:
            # Seconds are taken too: Schedule makes them a timedelta.
            self.add_schedule(Schedule(func, every, cron, name or "", tz))  # type: ignore[arg-type]
            return func

        return decorator

    def stream(
        self,
        name: str,
        *,
        consumer: str | None = None,
        offset: Offset = "next",
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        max_age: timedelta | str | None = None,
        max_length_bytes: int | None = None,
        partitions: int | None = None,
    ) -> Callable[[F], F]:
        """Read the RabbitMQ stream ``name`` (declared, with its retention), from ``offset``.

        ``offset``: ``"first"``, ``"last"`` (the last chunk), ``"next"`` (what comes
        after the start), an offset, an aware ``datetime`` or a ``timedelta`` back from
        now. A named ``consumer`` stores the offset it has settled on the broker and a
        restart resumes just after it (``offset`` then only says where the first start
        begins); see :mod:`burrowmq.routing.stream` for the repeats a crash may cause.
        ``Message.offset`` is each message's offset. Failures, after the route's retries
        (which wait in process), go to ``<consumer>.dlq`` (``<name>.dlq`` unnamed).
        ``max_age`` (``timedelta`` or ``"7D"``) and ``max_length_bytes`` set retention.
        Messages are handled one at a time, in order, unless ``concurrency=`` (or the
        router's) says otherwise; the App's ``concurrency`` does not apply.
        A named consumer reads on one instance at a time (the holder of its lease).
        ``partitions=N`` makes ``name`` a super stream (``name-0`` .. ``name-(N-1)``) read
        by a consumer group: each partition by one instance, spread over those running
        (see :mod:`burrowmq.routing.group`); it needs ``consumer``.
        """
        queue = stream_queue(name, max_age=max_age, max_length_bytes=max_length_bytes)
        options = StreamOptions(consumer=consumer, offset=offset, partitions=partitions)

        def decorator(func: F) -> F:
            self.add_route(
                Route(
                    func,
                    queue,
                    retry=retry,
                    prefetch=prefetch,
                    concurrency=concurrency,
                    dead_letter=False,
                    timeout=timeout,
                    stream=options,
                )
            )
            return func

        return decorator

    def rpc(
        self,
        procedure: str,
        *,
        queue: str | Queue | None = None,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        reply_queues: bool = False,
    ) -> Callable[[F], F]:
        """Serve the remote procedure ``procedure`` (``"<service>.<method>"``).

        The handler's first parameter's annotation validates the request; its return
        annotation shapes the reply. Every method of a service shares one durable classic
        queue, ``rpc.<service>`` unless ``queue=`` names another, bound to the
        ``burrowmq.rpc`` topic exchange with ``<service>.*``. Requests are transient and
        live no longer than their caller's timeout, so a classic queue's lower latency is
        preferred over a quorum queue's replication; pass a :class:`Queue` to choose.

        A failing handler is not retried unless ``retry=`` says so (calls may not be
        idempotent; the router's default retry does not apply); the caller receives the
        error as :class:`~burrowmq.RemoteError`. Nothing is dead-lettered: an expired
        request is dropped, a failed one answered with an error reply. ``prefetch`` and
        ``concurrency`` apply to the whole service queue (the largest given wins).
        ``timeout=`` bounds each attempt of the handler: past it the handler is
        cancelled and the caller receives a ``RemoteError`` of type ``HandlerTimeout``.

        Replies go only to direct reply-to addresses (``amq.rabbitmq.reply-to.*``), and
        only to well-formed ones; a request asking for its reply in a plain queue is
        acked and dropped with a warning (anyone who may publish requests could
        otherwise make the server write into another service's queue), unless
        ``reply_queues=True``.

        Raises:
            ConfigurationError: a bad procedure name or option.
        """
        proc = Procedure.parse(procedure)
        if isinstance(queue, Queue):
            q = queue
        else:
            name = proc.queue if queue is None else queue
            if not isinstance(name, str) or not name or name.startswith(RESERVED_PREFIX):
                raise ConfigurationError(f"rpc queue= takes a name or a Queue, got {queue!r}")
            q = Queue(name=name, arguments={"x-queue-type": "classic"})
        exchange = Exchange(name=RPC_EXCHANGE, type=RPC_EXCHANGE_TYPE)

        def decorator(func: F) -> F:
            self.add_route(
                Route(
                    func,
                    q,
                    exchange=exchange,
                    bindings=(BindingKey(proc.binding_key),),
                    retry=retry,
                    prefetch=prefetch,
                    concurrency=concurrency,
                    dead_letter=False,
                    procedure=proc.name,
                    reply_queues=reply_queues,
                    timeout=timeout,
                )
            )
            return func

        return decorator
