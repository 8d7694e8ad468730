"""Route: one handler bound to one queue, as a frozen value.

Decorators on :class:`~burrowmq.Router` are sugar that build a :class:`Route` and call
``router.add_route``. A route knows the topology it needs (its exchange, queue, bindings
and dead-letter path); the App merges every route's needs with the YAML topology.
"""

from __future__ import annotations

import enum
import itertools
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

from burrowmq.exceptions import ConfigurationError
from burrowmq.routing.batch import MAX_PREFETCH, Batch
from burrowmq.routing.handler import Handler, HandlerFunc
from burrowmq.routing.key_pattern import KeyParameters, KeyPattern
from burrowmq.routing.retry import Retry
from burrowmq.routing.stream import StreamOptions
from burrowmq.topology.model import Binding, Exchange, Queue, Topology

__all__ = ["BindingKey", "Route", "rpc_target"]


@dataclass(frozen=True, slots=True)
class BindingKey:
    """How a route's queue is bound to its exchange: a routing key and arguments."""

    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """A handler bound to a queue, with the policies that govern its deliveries.

    Args:
        handler: the async function called for each message.
        queue: the queue consumed; ``None`` gives each running instance its own
            exclusive queue (broadcast, for fanout).
        exchange: the exchange the queue is bound to, if any.
        bindings: the routing keys / header tables binding the queue to ``exchange``.
        declare_queue: whether burrowmq declares the queue (``False`` for queues declared
            elsewhere, such as in YAML; they are then checked to exist).
        retry: the retry policy; ``None`` takes the App's.
        prefetch: deliveries the broker may send ahead; ``None`` takes the App's.
        concurrency: handlers running at once; ``None`` takes the App's.
        dead_letter: the base name of the dead-letter path (``<base>.dlx`` and
            ``<base>.dlq``); ``None`` derives it from the queue; ``False`` turns it off.
        procedure: the RPC procedure name, for RPC routes.
        reply_queues: an RPC route also answers requests whose ``reply_to`` names a
            plain queue (not only direct reply-to addresses).
        timeout: seconds one attempt of the handler may take; past it the handler is
            cancelled and the attempt fails with :class:`~burrowmq.HandlerTimeout`
            (retried, then dead-lettered; an RPC caller gets a ``RemoteError``).
            ``None``: no limit.
        key_patterns: routing keys with ``{name}`` words whose values the handler's
            parameters of those names receive (see
            :mod:`burrowmq.routing.key_pattern`). On a topic exchange the bindings
            carry ``*`` in their place; on a direct exchange, which matches keys
            exactly, each parameter must be annotated with a finite set of values (a
            ``Literal``, an ``Enum`` or ``bool``) and the queue is bound once per
            combination; without an exchange (``consume``) they only name the words.
        batch: handle the messages in lists (:class:`~burrowmq.Batch`); the handler
            takes ``list[T]``. Not for RPC routes, nor with routing-key parameters.
            ``concurrency`` then counts batches at once (default 1).
        stream: how a stream route reads its stream (``queue`` is the stream;
            ``dead_letter`` must be ``False``: failures go to the consumer's dlq).
    """

    handler: HandlerFunc
    queue: Queue | None
    exchange: Exchange | None = None
    bindings: tuple[BindingKey, ...] = ()
    declare_queue: bool = True
    retry: Retry | None = None
    prefetch: int | None = None
    concurrency: int | None = None
    dead_letter: str | bool | None = None
    procedure: str | None = None
    reply_queues: bool = False
    timeout: float | None = None
    key_patterns: tuple[KeyPattern, ...] = ()
    batch: Batch | None = None
    stream: StreamOptions | None = None
    # The handler, inspected. An init field only so that dataclasses.replace carries it
    # over: a copy (with_prefix, with_defaults) is not inspected again, since the local
    # names of the frame that decorated the handler may be gone by then.
    spec: Handler = field(default=cast(Handler, None), repr=False, compare=False, kw_only=True)

    parameters: KeyParameters | None = field(init=False, repr=False, compare=False)
    """The plan that captures and validates the routing-key parameters (``None``: none)."""

    def __post_init__(self) -> None:
        names = self.key_patterns[0].names if self.key_patterns else ()
        batch = self.batch
        if self.spec is None or self.spec.func is not self.handler:
            spec = Handler.inspect(self.handler, key_params=names, batch=batch is not None)
            object.__setattr__(self, "spec", spec)
        if batch is not None:
            self._check_batch(batch, names)
        plan = KeyParameters(self.key_patterns, self.spec.key_types) if names else None
        object.__setattr__(self, "parameters", plan)
        if plan is not None and self.exchange is not None and self.exchange.type == "direct":
            object.__setattr__(self, "bindings", self._direct_bindings())
        for name in ("prefetch", "concurrency"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigurationError(
                    f"route {self.spec.name}: {name} must be a positive int, got {value!r}"
                )
        timeout = self.timeout
        if timeout is not None:
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, int | float)
                or not 0 < timeout < float("inf")
            ):
                raise ConfigurationError(
                    f"route {self.spec.name}: timeout= takes positive seconds, got {timeout!r}"
                )
            object.__setattr__(self, "timeout", float(timeout))
        if self.queue is None and self.exchange is None:
            raise ConfigurationError(
                f"route {self.spec.name}: a route without a queue needs an exchange"
            )
        if self.stream is not None and (self.queue is None or self.dead_letter is not False):
            raise ConfigurationError(
                f"route {self.spec.name}: a stream route needs its stream as queue and "
                "dead_letter=False (its failures go to the consumer's dlq)"
            )
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise ConfigurationError(
                f"route {self.spec.name}: retry= takes a burrowmq.Retry, got {self.retry!r}"
            )

    def _check_batch(self, batch: Batch, names: tuple[str, ...]) -> None:
        where = f"route {self.spec.name}"
        if not isinstance(batch, Batch):
            raise ConfigurationError(f"{where}: batch= takes a burrowmq.Batch, got {batch!r}")
        if self.procedure is not None:
            raise ConfigurationError(f"{where}: an RPC route answers each request: no batch=")
        if names:
            raise ConfigurationError(
                f"{where}: a batch route cannot take routing-key parameters "
                f"({', '.join(names)}): read message.routing_key from list[Message]"
            )
        if batch.size * (self.concurrency or 1) > MAX_PREFETCH:
            raise ConfigurationError(
                f"{where}: batch size times concurrency must stay within the AMQP prefetch "
                f"limit of {MAX_PREFETCH}"
            )

    def _direct_bindings(self) -> tuple[BindingKey, ...]:
        """The bindings plus one per combination of the parameters' possible values."""
        bindings = list(self.bindings)
        types = self.spec.key_types
        for pattern in self.key_patterns:
            choices = [_words_of(self.name, name, types[name]) for name in pattern.names]
            combinations = list(itertools.islice(itertools.product(*choices), _MAX_BINDINGS + 1))
            if len(combinations) > _MAX_BINDINGS:
                raise ConfigurationError(
                    f"route {self.name}: direct key {pattern.source!r} would need more than "
                    f"{_MAX_BINDINGS} bindings; use a topic exchange"
                )
            for combination in combinations:
                values = dict(zip(pattern.names, combination, strict=True))
                key = ".".join(
                    values[word[1:-1]] if word[1:-1] in values and word.startswith("{") else word
                    for word in pattern.source.split(".")
                )
                if all(b.routing_key != key or b.arguments for b in bindings):
                    bindings.append(BindingKey(key))
        return tuple(bindings)

    @property
    def name(self) -> str:
        """The handler's ``module.qualname``."""
        return self.spec.name

    @property
    def per_instance(self) -> bool:
        """Whether each running instance consumes from its own exclusive queue."""
        return self.queue is None

    def with_defaults(
        self,
        *,
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
    ) -> Route:
        """The same route with what it does not set taken from the given defaults.

        RPC routes never take a default ``retry``: a request may not be idempotent.
        """
        update: dict[str, Any] = {}
        if self.retry is None and retry is not None and self.procedure is None:
            update["retry"] = retry
        if self.prefetch is None and prefetch is not None:
            update["prefetch"] = prefetch
        if self.concurrency is None and concurrency is not None:
            update["concurrency"] = concurrency
        return replace(self, **update) if update else self

    def with_prefix(self, prefix: str) -> Route:
        """The same route with ``prefix`` before its (named) queue's name."""
        if not prefix or self.queue is None or not self.declare_queue:
            return self
        old = self.queue.name
        update: dict[str, Any] = {"name": prefix + old}
        arguments = self.queue.arguments
        if self.dead_letter is None and arguments.get("x-dead-letter-exchange") == f"{old}.dlx":
            # The dead-letter path is derived from the queue name: it moves with it.
            update["arguments"] = {**arguments, "x-dead-letter-exchange": f"{prefix}{old}.dlx"}
        return replace(self, queue=self.queue.model_copy(update=update))

    def queue_name(self, instance_id: str) -> str:
        """The queue this route consumes in the instance ``instance_id``."""
        if self.queue is not None:
            return self.queue.name
        assert self.exchange is not None
        return f"{self.exchange.name}.{self.spec.func.__name__}.{instance_id}"

    def dead_letter_base(self) -> str | None:
        """The base name of the dead-letter exchange and queue, or ``None`` when off."""
        if self.dead_letter is False:
            return None
        if isinstance(self.dead_letter, str):
            return self.dead_letter
        if self.queue is not None:
            return self.queue.name
        assert self.exchange is not None
        # Per-instance queues come and go; their dead letters share one durable queue.
        return f"{self.exchange.name}.{self.spec.func.__name__}"

    def topology(self, instance_id: str) -> Topology:
        """What this route needs declared, for the instance ``instance_id``.

        Raises:
            TopologyError: the route's own declarations contradict each other.
        """
        topo = Topology()
        origin = f"handler {self.name}"
        queue_name = self.queue_name(instance_id)
        dead_letter = self.dead_letter_base()
        if dead_letter is not None:
            topo.add(Exchange(name=f"{dead_letter}.dlx", type="fanout"), origin=origin)
            topo.add(
                Queue(name=f"{dead_letter}.dlq", arguments={"x-queue-type": "quorum"}),
                origin=origin,
            )
            topo.add(
                Binding(source=f"{dead_letter}.dlx", destination=f"{dead_letter}.dlq"),
                origin=origin,
            )
        if self.exchange is not None:
            topo.add(self.exchange, origin=origin)
        if self.queue is None:
            arguments: dict[str, Any] = {}
            if dead_letter is not None:
                arguments["x-dead-letter-exchange"] = f"{dead_letter}.dlx"
            topo.add(
                Queue(
                    name=queue_name,
                    durable=False,
                    exclusive=True,
                    auto_delete=True,
                    arguments=arguments,
                ),
                origin=origin,
            )
        elif self.declare_queue and (self.stream is None or self.stream.partitions is None):
            topo.add(self.queue, origin=origin)  # (a super stream is its partitions)
        if self.stream is not None:
            retention = self.queue.arguments if self.queue is not None else None
            topo = topo.merge(self.stream.topology(queue_name, origin=origin, arguments=retention))
        if self.exchange is not None:
            for key in self.bindings:
                topo.add(
                    Binding(
                        source=self.exchange.name,
                        destination=queue_name,
                        routing_key=key.routing_key,
                        arguments=dict(key.arguments),
                    ),
                    origin=origin,
                )
        return topo


_MAX_BINDINGS = 256


def _words_of(route: str, name: str, kind: Any) -> list[str]:
    """The words a direct key's parameter can be: its annotation's finite values."""
    if typing.get_origin(kind) is typing.Literal:
        values: list[Any] = list(typing.get_args(kind))
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        values = [member.value for member in kind]
    elif kind is bool:
        values = ["true", "false"]
    else:
        raise ConfigurationError(
            f"route {route}: a direct exchange matches routing keys exactly, so parameter "
            f"{{{name}}} needs a finite set of values (annotate it with a Literal, an Enum "
            "or bool; the queue is bound once per value), or use router.topic(...)"
        )
    words = [str(value) for value in values]
    for word in words:
        if "." in word or not word:
            raise ConfigurationError(
                f"route {route}: parameter {{{name}}} value {word!r} is not one routing-key word"
            )
    return words


def rpc_target(routes: Iterable[Route], handler: object) -> tuple[str, Any]:
    """The procedure ``handler`` serves among ``routes``, and its return annotation.

    Lets a caller name an RPC handler by the decorated function itself; the routes are
    the registry (an App's, from its routers), never a global one.

    Raises:
        ConfigurationError: no RPC route of ``routes`` has ``handler``.
    """
    for route in routes:
        if route.handler is handler and route.procedure is not None:
            returns = route.spec.returns
            return route.procedure, None if returns is Any else returns
    name = f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)!s}"
    raise ConfigurationError(
        f"call() takes a procedure name or an RPC handler of this app's routers; {name} "
        "is not one (an app calling another service names the procedure: "
        "call('service.method', ..., returns=Model))"
    )
