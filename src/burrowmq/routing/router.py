"""Router: a list of routes and schedules, with decorators for each exchange type.

Decorators return the function unchanged (it stays a plain, unit-testable coroutine
function); they build a :class:`~burrowmq.routing.route.Route` and call
:meth:`Router.add_route`. Nothing is registered globally and importing a module with
routes has no side effect beyond filling its router.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta, tzinfo
from typing import Any, TypeVar

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.vocabulary import (
    RESERVED_PREFIX,
    X_MATCH_MODES,
    HeadersMatch,
    name_problem,
)
from burrowmq.routing.batch import Batch
from burrowmq.routing.handler import HandlerFunc
from burrowmq.routing.key_pattern import KeyPattern, parse_keys
from burrowmq.routing.offsets import Offset
from burrowmq.routing.options import exchange_of, keys_of, queue_of
from burrowmq.routing.procedure import RPC_EXCHANGE, RPC_EXCHANGE_TYPE, Procedure
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.routing.schedule import Schedule, ScheduleFunc
from burrowmq.routing.stream import StreamOptions, stream_queue
from burrowmq.topology.model import Exchange, Queue

__all__ = ["Router"]

F = TypeVar("F", bound=HandlerFunc)
S = TypeVar("S", bound=ScheduleFunc)


class Router:
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

    def __init__(
        self,
        *,
        prefix: str = "",
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        self._prefix = prefix
        self._retry = retry
        self._prefetch = prefetch
        self._concurrency = concurrency
        self._routes: list[Route] = []
        self._schedules: list[Schedule] = []
        self._running_apps = 0  # Apps that read these routes when they started
        self._included_in: list[Router] = []  # routers that copied these routes

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes, in the order they were added."""
        return tuple(self._routes)

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        """The schedules, in the order they were added."""
        return tuple(self._schedules)

    def add_schedule(self, schedule: Schedule) -> None:
        """Add a schedule (the primitive :meth:`schedule` uses).

        Raises:
            ConfigurationError: not a Schedule, one of that name is here already, or a
                schedule added now would be lost (as for :meth:`add_route`).
        """
        if not isinstance(schedule, Schedule):
            raise ConfigurationError(f"add_schedule() takes a Schedule, got {schedule!r}")
        if (reason := self._why_closed()) is not None:
            raise ConfigurationError(f"cannot add the schedule {schedule.name}: {reason}")
        if any(s.name == schedule.name for s in self._schedules):
            raise ConfigurationError(f"two schedules are named {schedule.name!r}; pass name=")
        self._schedules.append(schedule)

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

    def _serving(self, delta: int) -> None:
        """Count an App that started (``+1``) or stopped (``-1``) serving these routes.

        While one runs, :meth:`add_route` refuses: the App read the routes when it
        started, and a route added now would never be consumed. Called by the App only.
        """
        self._running_apps = max(0, self._running_apps + delta)

    def _why_closed(self) -> str | None:
        """Why a route added now would be silently lost, or ``None`` if it would not."""
        if self._running_apps:
            return (
                "an App serving this router is running, and it read the router's routes "
                "when it started; add every route before the App starts"
            )
        if self._included_in:
            return (
                "this router was included into another with include_router(), which "
                "copied the routes it had then; add every route before including it"
            )
        return None

    def add_route(self, route: Route) -> None:
        """Add a route (the primitive every decorator uses), with this router's settings.

        The router's prefix goes before the route's declared queue name, and its retry,
        prefetch and concurrency fill in what the route does not set.

        Raises:
            ConfigurationError: ``route`` is not a Route; or a route added now would be
                lost: an App serving this router is running (it read the routes when it
                started), or this router was included into another (which copied them).
        """
        if not isinstance(route, Route):
            raise ConfigurationError(f"add_route() takes a Route, got {route!r}")
        if (reason := self._why_closed()) is not None:
            raise ConfigurationError(f"cannot add the route of {route.name}: {reason}")
        self._routes.append(
            route.with_defaults(
                retry=self._retry, prefetch=self._prefetch, concurrency=self._concurrency
            ).with_prefix(self._prefix)
        )

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

    # -- decorators ----------------------------------------------------------------

    def _register(
        self,
        func: HandlerFunc,
        *,
        queue: Queue | None,
        exchange: Exchange | None,
        bindings: tuple[BindingKey, ...],
        declare_queue: bool = True,
        retry: Retry | None,
        prefetch: int | None,
        concurrency: int | None,
        dead_letter: str | bool | None,
        timeout: float | None,
        batch: Batch | None,
        key_patterns: tuple[KeyPattern, ...] = (),
    ) -> None:
        self.add_route(
            Route(
                func,
                queue,
                exchange=exchange,
                bindings=bindings,
                declare_queue=declare_queue,
                retry=retry,
                prefetch=prefetch,
                concurrency=concurrency,
                dead_letter=dead_letter,
                timeout=timeout,
                batch=batch,
                key_patterns=key_patterns,
            )
        )

    def direct(
        self,
        exchange: str | Exchange,
        routing_key: str | Sequence[str],
        *,
        queue: str | Queue | None = None,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        batch: Batch | None = None,
        dead_letter: str | bool | None = None,
        exchange_options: Mapping[str, Any] | None = None,
        queue_options: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Consume messages sent to a direct exchange with one of ``routing_key``.

        Without ``queue=``, the queue is named ``<exchange>.<function name>``; instances
        of the service share it (the work is split between them).

        A ``{name}`` word (``"order.{region}"``) passes that word of the routing key to
        the handler's parameter ``name``. A direct exchange matches keys exactly, so
        the parameter must be annotated with a finite set of values (a ``Literal``, an
        ``Enum`` or ``bool``): the queue is bound once per value (``order.eu``,
        ``order.us``). See :meth:`topic` for the limits.
        """
        ex = exchange_of(exchange, "direct", exchange_options)
        keys = keys_of(routing_key, "direct routing_key")
        patterns = parse_keys(keys, what="direct routing_key")
        keyed = patterns[0].has_parameters

        def decorator(func: F) -> F:
            q = queue_of(queue, f"{ex.name}.{func.__name__}", queue_options, dead_letter)
            self._register(
                func,
                queue=q,
                exchange=ex,
                bindings=() if keyed else tuple(BindingKey(k) for k in keys),
                key_patterns=patterns if keyed else (),
                retry=retry,
                prefetch=prefetch,
                concurrency=concurrency,
                dead_letter=dead_letter,
                timeout=timeout,
                batch=batch,
            )
            return func

        return decorator

    def fanout(
        self,
        exchange: str | Exchange,
        *,
        queue: str | Queue | None = None,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        batch: Batch | None = None,
        dead_letter: str | bool | None = None,
        exchange_options: Mapping[str, Any] | None = None,
        queue_options: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Consume every message sent to a fanout exchange.

        Without ``queue=``, each running instance gets its own exclusive queue and so
        every instance sees every message (broadcast); with ``queue=`` instances share
        one durable queue (the work is split).
        """
        ex = exchange_of(exchange, "fanout", exchange_options)

        def decorator(func: F) -> F:
            q = queue_of(queue, None, queue_options, dead_letter)
            if q is None and queue_options:
                raise ConfigurationError(
                    "queue_options= needs queue=: per-instance fanout queues are exclusive"
                )
            self._register(
                func,
                queue=q,
                exchange=ex,
                bindings=(BindingKey(""),),
                retry=retry,
                prefetch=prefetch,
                concurrency=concurrency,
                dead_letter=dead_letter,
                timeout=timeout,
                batch=batch,
            )
            return func

        return decorator

    def topic(
        self,
        exchange: str | Exchange,
        patterns: str | Sequence[str],
        *,
        queue: str | Queue | None = None,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        batch: Batch | None = None,
        dead_letter: str | bool | None = None,
        exchange_options: Mapping[str, Any] | None = None,
        queue_options: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Consume messages whose routing key matches one of ``patterns``.

        ``*`` matches exactly one dot-separated word, ``#`` zero or more. Without
        ``queue=``, the queue is named ``<exchange>.<function name>``.

        A ``{name}`` word is a ``*`` whose word is passed to the handler's parameter
        ``name``, validated by its annotation (``str``, ``int``, an ``Enum``, any type
        pydantic validates): ``"logs.{level}.#"`` binds ``logs.*.#``. A word that does
        not validate dead-letters the message at once, like an invalid payload, with
        a reason naming the parameter. Limits: one word per parameter; ``{name}`` is a
        whole word between dots; not between two ``#``; every pattern of the route
        names the same parameters. A parameter the key names and the handler lacks, or
        a handler parameter without default that nothing fills, is a
        :class:`~burrowmq.ConfigurationError` when the handler is decorated.
        """
        ex = exchange_of(exchange, "topic", exchange_options)
        keys = keys_of(patterns, "topic pattern")
        parsed = parse_keys(keys, what="topic pattern")

        def decorator(func: F) -> F:
            q = queue_of(queue, f"{ex.name}.{func.__name__}", queue_options, dead_letter)
            self._register(
                func,
                queue=q,
                exchange=ex,
                bindings=tuple(BindingKey(p.binding) for p in parsed),
                key_patterns=parsed if parsed[0].has_parameters else (),
                retry=retry,
                prefetch=prefetch,
                concurrency=concurrency,
                dead_letter=dead_letter,
                timeout=timeout,
                batch=batch,
            )
            return func

        return decorator

    def headers(
        self,
        exchange: str | Exchange,
        headers: Mapping[str, Any],
        *,
        match: HeadersMatch = "all",
        queue: str | Queue | None = None,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        batch: Batch | None = None,
        dead_letter: str | bool | None = None,
        exchange_options: Mapping[str, Any] | None = None,
        queue_options: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Consume messages whose headers match ``headers`` (``match`` all or any).

        ``all-with-x``/``any-with-x`` also compare headers starting with ``x-``.
        """
        ex = exchange_of(exchange, "headers", exchange_options)
        if match not in X_MATCH_MODES:
            raise ConfigurationError(
                f"headers match= must be one of {X_MATCH_MODES}, got {match!r}"
            )
        if not isinstance(headers, Mapping) or not headers:
            raise ConfigurationError("headers() needs a non-empty mapping of header values")
        if "x-match" in headers:
            raise ConfigurationError("pass match=..., not an 'x-match' header")
        arguments = {"x-match": match, **headers}

        def decorator(func: F) -> F:
            q = queue_of(queue, f"{ex.name}.{func.__name__}", queue_options, dead_letter)
            self._register(
                func,
                queue=q,
                exchange=ex,
                bindings=(BindingKey("", arguments),),
                retry=retry,
                prefetch=prefetch,
                concurrency=concurrency,
                dead_letter=dead_letter,
                timeout=timeout,
                batch=batch,
            )
            return func

        return decorator

    def consume(
        self,
        queue: str | Queue,
        *,
        routing_key: str | Sequence[str] | None = None,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        batch: Batch | None = None,
        dead_letter: str | bool | None = None,
        queue_options: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]:
        """Consume a queue directly.

        A queue given by name is declared elsewhere (in the YAML topology, or by another
        service) and must exist when the App starts, unless ``queue_options=`` is given;
        a :class:`Queue` is declared as it is.

        ``routing_key=`` (a pattern, or several, as :meth:`topic` takes them) binds
        nothing: its ``{name}`` words pass those words of each delivery's routing key to
        the handler's parameters, as :meth:`topic` does. A delivery whose key does not
        match is dead-lettered at once with the reason.
        """
        key_patterns: tuple[KeyPattern, ...] = ()
        if routing_key is not None:
            keys = keys_of(routing_key, "consume routing_key")
            key_patterns = parse_keys(keys, what="consume routing_key")
            if not key_patterns[0].has_parameters:
                raise ConfigurationError(
                    "consume(routing_key=...) binds nothing: it only names {name} "
                    f"parameters, and {key_patterns[0].source!r} has none"
                )
        declare = isinstance(queue, Queue) or queue_options is not None
        q: Queue | None
        if isinstance(queue, Queue):
            q = queue
        elif declare:
            q = queue_of(queue, None, queue_options, dead_letter)
        else:
            if not isinstance(queue, str) or not queue:
                raise ConfigurationError(f"consume() takes a queue name or Queue, got {queue!r}")
            if (problem := name_problem(queue, "queue")) is not None:
                raise ConfigurationError(problem)
            q = Queue(name=queue)

        def decorator(func: F) -> F:
            assert q is not None
            self._register(
                func,
                queue=q,
                exchange=None,
                bindings=(),
                key_patterns=key_patterns,
                declare_queue=declare,
                retry=retry,
                prefetch=prefetch,
                concurrency=concurrency,
                dead_letter=dead_letter,
                timeout=timeout,
                batch=batch,
            )
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
