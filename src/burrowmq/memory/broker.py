"""The in-memory broker: exchanges, queues, bindings and channels, kept as RabbitMQ keeps them.

:class:`MemoryBroker` is what a RabbitMQ virtual host is to the AMQP transport: every
:class:`~burrowmq.memory.transport.MemoryTransport` connected to it sees the same
exchanges, queues and messages. Routing is :mod:`burrowmq.framework.matching`'s, the one
implementation of AMQP routing semantics; this module owns everything else: queue
arguments and their equivalence on redeclare, exclusive queues, prefetch, ack, nack and
requeue, time-to-live, length limits and dead-lettering with ``x-death``.

Deliveries are always asynchronous: a publish, an ack or a new consumer schedules the
queue with ``loop.call_soon``, and consumer callbacks run from there, never inside the
call that caused them.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from burrowmq.exceptions import (
    ConfigurationError,
    PublishError,
    PublishNacked,
    TopologyError,
    Unroutable,
)
from burrowmq.framework.clock import Clock, SystemClock
from burrowmq.framework.log import get_logger
from burrowmq.framework.matching import (
    DEFAULT_RULES,
    STANDARD_EXCHANGES,
    BindingSpec,
    ExchangeSpec,
    RoutingGraph,
    Rules,
    compile_headers,
    route,
    rules_for,
)
from burrowmq.framework.transport import Properties
from burrowmq.framework.vocabulary import RESERVED_PREFIX, header_problem, unencodable
from burrowmq.memory.declarations import (
    MemoryExchange,
    binding_key,
    check_exchange,
    check_new_exchange,
    check_new_queue,
    check_queue,
)
from burrowmq.memory.message import (
    PublishRecord,
    StoredMessage,
    as_sent,
    parse_expiration,
    with_death,
)
from burrowmq.memory.queue import (
    MemoryChannel,
    MemoryConsumer,
    MemoryQueue,
)
from burrowmq.memory.stream import MemoryStream

__all__ = ["MemoryBroker", "MemoryExchange"]

_log = get_logger()


class MemoryBroker:
    """An in-process RabbitMQ virtual host, shared by the transports connected to it.

    Args:
        name: a label for messages and :attr:`description`.
        rules: the RabbitMQ version whose headers matching routing follows (4.x's by
            default; ``memory://NAME?rabbitmq=3.10`` gives 3.x's).
    """

    _named: ClassVar[dict[str, MemoryBroker]] = {}

    def __init__(self, name: str = "memory://", *, rules: Rules = DEFAULT_RULES) -> None:
        self.name = name
        self.rules = rules
        self.clock: Clock = SystemClock()
        """The time message TTLs run on; a test client may give a fake one."""
        self.exchanges: dict[str, MemoryExchange] = {"": MemoryExchange("", "direct")}
        for spec in STANDARD_EXCHANGES:
            self.exchanges[spec.name] = MemoryExchange(spec.name, spec.type)
        self.queues: dict[str, MemoryQueue] = {}
        self._bindings: dict[tuple[Any, ...], BindingSpec] = {}
        self._graph: RoutingGraph | None = None
        self._seq = itertools.count()
        self._connections: set[object] = set()
        self._listeners: list[Callable[[PublishRecord], None]] = []
        self.replies: dict[str, Callable[[StoredMessage], None]] = {}
        """Direct reply-to addresses, each delivering to the reply channel that owns it."""
        self.channel_errors: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []
        """Channel-level errors so far (e.g. an ack of an unknown delivery tag)."""

    # -- the registry of named brokers ---------------------------------------------------

    @staticmethod
    def key(url: str) -> str:
        """The registry key of a ``memory://`` URL: ``memory://`` and ``memory:///`` are one.

        The query (``?rabbitmq=3.10``) is not part of it: one name is one broker.
        """
        parts = urlsplit(url)
        return f"memory://{parts.netloc}{parts.path.rstrip('/')}"

    @staticmethod
    def rules_of(url: str) -> Rules:
        """The routing rules a ``memory://`` URL asks for: ``?rabbitmq=VERSION``, else 4.x's.

        Raises:
            ConfigurationError: a parameter other than ``rabbitmq``, ``rabbitmq`` given
                twice, or a value that is not a RabbitMQ version of 3.10 or later.
        """
        params = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        unknown = sorted({name for name, _ in params} - {"rabbitmq"})
        if unknown:
            raise ConfigurationError(
                f"memory:// URL {url!r} has an unknown parameter {unknown[0]!r}; "
                "the only one is rabbitmq=VERSION (e.g. ?rabbitmq=3.10)"
            )
        if not params:
            return DEFAULT_RULES
        if len(params) > 1:
            raise ConfigurationError(f"memory:// URL {url!r} gives the parameter rabbitmq twice")
        try:
            return rules_for(params[0][1])
        except ValueError as exc:
            raise ConfigurationError(
                f"memory:// URL {url!r}: parameter rabbitmq={params[0][1]!r}: {exc}"
            ) from None

    @classmethod
    def named(cls, url: str) -> MemoryBroker:
        """The broker of a ``memory://name[?rabbitmq=VERSION]`` URL, created on first use.

        A named broker lives while a connection to it is open: once the last one closes,
        the next connection starts with an empty broker (a fresh one per test).

        Raises:
            ConfigurationError: a bad ``?rabbitmq=`` (see :meth:`rules_of`), or the broker
                of that name is open with the other version's rules: one name is one
                broker, so two URLs that name it must ask for the same rules.
        """
        key, rules = cls.key(url), cls.rules_of(url)
        broker = cls._named.get(key)
        if broker is None:
            broker = cls._named[key] = cls(key, rules=rules)
        elif broker.rules is not rules:
            raise ConfigurationError(
                f"{url!r} asks for the headers matching of {rules.value}, but the broker "
                f"{key} is open with that of {broker.rules.value}; give both URLs the same "
                "?rabbitmq=, or another name"
            )
        return broker

    def attach(self, connection: object) -> None:
        """Register an open connection (and the broker under its name, if it is named)."""
        self._connections.add(connection)
        if self.name.startswith("memory://"):
            self._named.setdefault(self.name, self)

    def detach(self, connection: object) -> None:
        """Forget a closed connection: delete its exclusive queues; drop an unused broker."""
        self._connections.discard(connection)
        for queue in [q for q in self.queues.values() if q.owner is connection]:
            self.delete_queue(queue.name)
        if not self._connections and self._named.get(self.name) is self:
            del self._named[self.name]

    # -- listeners (the testing kit captures publishes with them) ------------------------

    def add_listener(self, listener: Callable[[PublishRecord], None]) -> None:
        """Call ``listener`` with a :class:`PublishRecord` for every client publish."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[PublishRecord], None]) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def changed(self) -> asyncio.Future[None]:
        """A future resolved the next time a message is settled, expired or delivered."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def notify(self) -> None:
        """Resolve the futures :meth:`changed` handed out (queues call it on every change)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- declarations --------------------------------------------------------------------

    def declare_exchange(
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
        """Declare an exchange, or check an existing one is equivalent (406 otherwise).

        Raises:
            TopologyError: a different exchange of that name exists, the type is unknown,
                or (passive) it does not exist.
        """
        entity = f"exchange {name!r}"
        if name == "" or name.startswith(RESERVED_PREFIX):
            return  # predeclared, as the AMQP transport treats them
        current = self.exchanges.get(name)
        if passive:
            if current is None:
                raise TopologyError(f"{entity}: NOT_FOUND - no exchange {name!r}", entity=entity)
            return
        args = dict(arguments or {})
        if current is not None:
            check_exchange(current, type, durable, auto_delete, internal, args)
            return
        check_new_exchange(name, type)
        self.exchanges[name] = MemoryExchange(name, type, durable, auto_delete, internal, args)
        self._graph = None

    def declare_queue(
        self,
        name: str,
        *,
        owner: object,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
    ) -> str:
        """Declare a queue, or check an existing one is equivalent; return its name.

        Raises:
            TopologyError: a different queue of that name exists, another connection
                holds it exclusively, an argument is invalid, or (passive) it is missing.
        """
        entity = f"queue {name!r}"
        current = self.queues.get(name)
        if current is not None and current.owner not in (None, owner):
            raise TopologyError(
                f"{entity} was refused: RESOURCE_LOCKED - cannot obtain exclusive access to "
                "a queue another connection declared exclusive",
                entity=entity,
            )
        if passive:
            if current is None:
                raise TopologyError(f"{entity}: NOT_FOUND - no queue {name!r}", entity=entity)
            return name
        args = dict(arguments or {})
        if current is not None:
            existing = (current.durable, current.auto_delete, current.arguments)
            check_queue(name, existing, durable, auto_delete, args)
            return name
        check_new_queue(name, durable, exclusive, auto_delete, args)
        name = name or f"amq.gen-{uuid.uuid4().hex}"
        kind = MemoryStream if args.get("x-queue-type") == "stream" else MemoryQueue
        self.queues[name] = kind(
            self,
            name,
            durable=durable,
            auto_delete=auto_delete,
            owner=owner if exclusive else None,
            arguments=args,
        )
        self._graph = None
        return name

    def bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        destination_type: str,
    ) -> None:
        """Bind a queue or exchange to an exchange; an identical binding is a no-op.

        Raises:
            TopologyError: either end is missing or the default exchange, or a headers
                binding has an invalid ``x-match``.
        """
        entity = f"binding of {destination_type} {destination!r} to exchange {source!r}"
        for end, is_exchange in ((source, True), (destination, destination_type == "exchange")):
            if is_exchange and end == "":
                raise TopologyError(
                    f"{entity} was refused: ACCESS_REFUSED - operation not permitted on the "
                    "default exchange",
                    entity=entity,
                )
            known = self.exchanges if is_exchange else self.queues
            if end not in known:
                kind = "exchange" if is_exchange else "queue"
                raise TopologyError(f"{entity}: NOT_FOUND - no {kind} {end!r}", entity=entity)
        args = dict(arguments or {})
        if self.exchanges[source].type == "headers":
            try:
                compile_headers(args)
            except (TypeError, ValueError) as exc:
                raise TopologyError(
                    f"{entity} was refused: PRECONDITION_FAILED - {exc}",
                    entity=entity,
                    argument="x-match",
                ) from None
        spec = BindingSpec(
            source,
            destination,
            "exchange" if destination_type == "exchange" else "queue",
            routing_key,
            args,
        )
        self._bindings.setdefault(binding_key(spec), spec)
        self._graph = None

    @property
    def bindings(self) -> tuple[BindingSpec, ...]:
        """Every binding, in the order they were made."""
        return tuple(self._bindings.values())

    def delete_queue(self, name: str) -> None:
        """Delete a queue, its bindings and its messages; cancel its consumers."""
        queue = self.queues.pop(name, None)
        if queue is None:
            return
        queue.destroy()
        self.notify()
        self._drop_bindings(lambda b: b.destination_type == "queue" and b.destination == name)

    def delete_exchange(self, name: str) -> None:
        """Delete an exchange and every binding from or to it."""
        if name == "" or name.startswith(RESERVED_PREFIX) or self.exchanges.pop(name, None) is None:
            return
        self._drop_bindings(
            lambda b: (
                b.source == name or (b.destination_type == "exchange" and b.destination == name)
            )
        )

    def _drop_bindings(self, doomed: Callable[[BindingSpec], bool]) -> None:
        sources = set()
        for key, spec in list(self._bindings.items()):
            if doomed(spec):
                del self._bindings[key]
                sources.add(spec.source)
        self._graph = None
        for source in sources:  # an auto-delete exchange goes with its last binding
            exchange = self.exchanges.get(source)
            in_use = any(b.source == source for b in self._bindings.values())
            if exchange and exchange.auto_delete and not in_use:
                self.delete_exchange(source)

    # -- routing and publishing ----------------------------------------------------------

    def graph(self) -> RoutingGraph:
        """The current exchanges, bindings and queues as a routing graph (cached)."""
        if self._graph is None:
            self._graph = RoutingGraph(
                exchanges=tuple(
                    ExchangeSpec(x.name, x.type, x.alternate_exchange)
                    for x in self.exchanges.values()
                    if x.name
                ),
                bindings=tuple(self._bindings.values()),
                queues=frozenset(self.queues),
                rules=self.rules,
            )
        return self._graph

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        *,
        mandatory: bool = False,
    ) -> frozenset[str]:
        """Route and enqueue a message, as a confirmed publish; return the queues it reached.

        Raises:
            PublishError: the exchange does not exist or is internal, or the
                expiration is not a number of milliseconds (the broker closes the channel).
            Unroutable: ``mandatory`` and no queue took it.
            PublishNacked: a queue refused it (``x-overflow: reject-publish``).
            PublishError: a header value AMQP cannot carry (named, as on RabbitMQ's
                transport).
        """
        target = self.exchanges.get(exchange)
        where = f"exchange {exchange!r}"
        if target is None:
            raise PublishError(
                f"cannot publish to {where}: NOT_FOUND - no exchange {exchange!r}",
                exchange=exchange,
                routing_key=routing_key,
            )
        if target.internal:
            raise PublishError(
                f"publish to {where} failed: ACCESS_REFUSED - cannot publish to internal {where}",
                exchange=exchange,
                routing_key=routing_key,
            )
        try:
            ttl = parse_expiration(properties.expiration)
        except ValueError as exc:
            raise PublishError(
                f"publish to {where} failed: PRECONDITION_FAILED - {exc}",
                exchange=exchange,
                routing_key=routing_key,
            ) from None
        if header_problem(properties.headers) is not None:
            raise unencodable(exchange, routing_key, properties.headers, "")
        props = as_sent(properties)
        reply = self.replies.get(routing_key) if exchange == "" else None
        if reply is not None:  # direct reply-to: straight to the channel that asked
            queues = frozenset({routing_key})
        else:
            queues = frozenset(route(self.graph(), exchange, routing_key, props.headers))
        record = PublishRecord(exchange, routing_key, bytes(body), props, queues)
        for listener in list(self._listeners):
            listener(record)
        if reply is not None:
            reply(self.message(body, props, exchange, routing_key, ttl))
            return queues
        if not queues and mandatory:
            raise Unroutable(
                f"no queue is bound to take a message published to {where} "
                f"with routing key {routing_key!r}",
                exchange=exchange,
                routing_key=routing_key,
            )
        refused = [
            name
            for name in sorted(queues)
            if not self.queues[name].put(self.message(body, props, exchange, routing_key, ttl))
        ]
        if refused:
            raise PublishNacked(
                f"the broker refused (nacked) a message for {where}: queue {refused[0]!r} "
                "is full (x-overflow: reject-publish)",
                exchange=exchange,
                routing_key=routing_key,
            )
        return queues

    def message(
        self, body: bytes, props: Properties, exchange: str, routing_key: str, ttl: int | None
    ) -> StoredMessage:
        """A new stored message, numbered in publish order."""
        return StoredMessage(
            body=bytes(body),
            properties=props,
            exchange=exchange,
            routing_key=routing_key,
            seq=next(self._seq),
            ttl=ttl,
        )

    def dead_letter(self, queue: MemoryQueue, message: StoredMessage, reason: str) -> None:
        """Send a message to its queue's dead-letter exchange, or drop it when it has none.

        Like RabbitMQ: ``x-death`` records each (queue, reason) with a count, the
        ``x-first-death-*`` headers the first one, the per-message expiration is removed,
        and a message that would cycle back to a queue without any rejection is dropped.
        """
        dlx = queue.arguments.get("x-dead-letter-exchange")
        if not isinstance(dlx, str) or dlx not in self.exchanges:
            return
        key = queue.arguments.get("x-dead-letter-routing-key")
        routing_key = key if isinstance(key, str) else message.routing_key
        copy = with_death(message, queue.name, reason)
        headers = copy.headers
        deaths = [d for d in headers["x-death"] if isinstance(d, dict)]
        rejected = any(d.get("reason") == "rejected" for d in deaths)
        for name in sorted(route(self.graph(), dlx, routing_key, headers)):
            cycled = any(d.get("queue") == name for d in deaths)
            if cycled and not rejected:
                _log.debug("dead_letter_cycle_dropped", queue=name)
                continue
            self.queues[name].put(self.message(message.body, copy, dlx, routing_key, None))

    # -- consumers and channels ----------------------------------------------------------

    def open_channel(self, owner: object) -> MemoryChannel:
        """A new channel on the connection ``owner``."""
        return MemoryChannel(self, owner)

    def consume(
        self,
        channel: MemoryChannel,
        queue: str,
        callback: Callable[[Any], None],
        *,
        prefetch: int,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> MemoryConsumer:
        """Start a consumer on ``channel``; deliveries begin on the next loop iteration.

        Raises:
            TopologyError: the queue does not exist, is another connection's exclusive
                queue, or an exclusive consumer stands in the way.
        """
        target = self.queues.get(queue)
        entity = f"queue {queue!r}"
        if target is None:
            raise TopologyError(
                f"cannot consume from queue {queue!r}: it does not exist", entity=entity
            )
        if target.owner not in (None, channel.owner):
            raise TopologyError(
                f"cannot consume from queue {queue!r}: RESOURCE_LOCKED - another connection "
                "declared it exclusive",
                entity=entity,
            )
        if target.consumers and (exclusive or any(c.exclusive for c in target.consumers)):
            raise TopologyError(
                f"cannot consume from queue {queue!r}: ACCESS_REFUSED - queue {queue!r} in "
                "exclusive use",
                entity=entity,
            )
        return target.add_consumer(
            channel,
            callback,
            prefetch=prefetch,
            no_ack=no_ack,
            exclusive=exclusive,
            arguments=arguments,
        )

    def channel_error(self, channel: MemoryChannel, reason: str) -> None:
        """Close ``channel`` for a protocol error, as the broker would, and record it."""
        self.channel_errors.append(reason)
        _log.warning("channel_closed_by_broker", broker=self.name, reason=reason)
        channel.close()

    # -- inspection ----------------------------------------------------------------------

    def messages(self, queue: str) -> list[StoredMessage]:
        """The messages ready in ``queue`` (not those delivered and unacked), in order.

        Raises:
            KeyError: no such queue.
        """
        return list(self.queues[queue].ready)
