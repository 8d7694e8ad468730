"""ExchangeRoutes: the decorators that consume from an exchange kind, or from a queue.

``direct``, ``fanout``, ``topic`` and ``headers`` declare a queue bound to an exchange
of that kind; ``consume`` reads a queue as it is. Each validates its arguments when
called, builds the :class:`~burrowmq.routing.route.Route` when it decorates, and
returns the function unchanged. A base of :class:`~burrowmq.routing.router.Router`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.vocabulary import X_MATCH_MODES, HeadersMatch, name_problem
from burrowmq.routing.batch import Batch
from burrowmq.routing.handler import HandlerFunc
from burrowmq.routing.key_pattern import KeyPattern, parse_keys
from burrowmq.routing.options import exchange_of, keys_of, queue_of
from burrowmq.routing.registry import RouteRegistry
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import BindingKey, Route
from burrowmq.topology.model import Exchange, Queue

__all__ = ["ExchangeRoutes"]

F = TypeVar("F", bound=HandlerFunc)


class ExchangeRoutes(RouteRegistry):
    """The exchange-kind and queue decorators of a router (see ``Router``)."""

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
