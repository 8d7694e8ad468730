"""The burrowmq error tree.

Every error burrowmq raises derives from :class:`BurrowError`; errors of aio-pika,
aiormq and pamqp are translated once, at the AMQP transport boundary, and never reach
users raw::

    BurrowError
    ├── ConfigurationError        the API was used wrongly (bad route, bad option)
    │   └── StateError            an operation does not fit the app's lifecycle state
    ├── TransportError            the connection to the broker failed
    │   ├── BrokerUnreachable     no URL could be connected to
    │   └── ConnectionLost        the connection dropped while an operation waited on it
    ├── PublishError              a publish was not confirmed by the broker
    │   ├── PublishBatchError     some messages of a publish_many were not confirmed
    │   ├── PublishNacked         the broker answered the publish with a nack
    │   └── Unroutable            a mandatory publish reached no queue
    │       └── NoRoute           an RPC request reached no server
    │           └── NoServer      the service's queue exists, but nothing consumes it
    ├── TopologyError             bad topology, or a declaration the broker refused
    ├── DecodeError               a payload did not decode or validate
    ├── EncodeError               a value could not be encoded for the wire
    ├── TooManyRedeliveries       a message kept coming back unsettled: it was dead-lettered
    ├── HandlerTimeout            a handler ran past its route's timeout and was cancelled
    ├── LifespanError             the App's lifespan failed to start or to stop
    └── RpcError                  an RPC call failed
        ├── RpcTimeout            no reply came within the timeout
        └── RemoteError           the remote handler raised; carries its type and message

Handler outcomes such as :class:`burrowmq.Reject` are signals, not errors: they live
outside this tree so that ``except BurrowError`` never swallows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BrokerUnreachable",
    "BurrowError",
    "ConfigurationError",
    "ConnectionLost",
    "DecodeError",
    "EncodeError",
    "HandlerTimeout",
    "LifespanError",
    "NoRoute",
    "NoServer",
    "PublishBatchError",
    "PublishError",
    "PublishNacked",
    "RemoteError",
    "RpcError",
    "RpcTimeout",
    "StateError",
    "TooManyRedeliveries",
    "TopologyError",
    "TopologyProblem",
    "TransportError",
    "Unroutable",
]


class BurrowError(Exception):
    """Root of every error burrowmq raises."""


class ConfigurationError(BurrowError):
    """The API was used wrongly: a bad route, option or argument."""


class StateError(ConfigurationError):
    """An operation does not fit the app's lifecycle state (new, running, closed)."""


class TransportError(BurrowError):
    """The connection to the broker failed."""


class BrokerUnreachable(TransportError):
    """No broker URL could be connected to.

    Attributes:
        targets: the masked addresses that were tried (``host:port`` as ``user``).
        answered: a broker answered and refused (the login, the vhost, TLS), as opposed
            to no broker listening or answering in time.
    """

    def __init__(
        self, message: str, *, targets: tuple[str, ...] = (), answered: bool = False
    ) -> None:
        super().__init__(message)
        self.targets = targets
        self.answered = answered


class ConnectionLost(TransportError):
    """The connection dropped while an operation (publish, call, declare) waited on it."""


class PublishError(BurrowError):
    """A publish was not confirmed by the broker.

    Attributes:
        exchange: the exchange published to (``""`` is the default exchange).
        routing_key: the routing key of the message.
    """

    def __init__(self, message: str, *, exchange: str = "", routing_key: str = "") -> None:
        super().__init__(message)
        self.exchange = exchange
        self.routing_key = routing_key


class PublishBatchError(PublishError):
    """Some messages of a :meth:`App.publish_many` were not confirmed.

    Attributes:
        failures: ``(index, error)`` for each message that failed, by index.
        confirmed: how many messages the broker confirmed.
    """

    def __init__(
        self,
        message: str,
        *,
        failures: list[tuple[int, BurrowError]],
        confirmed: int,
        exchange: str = "",
        routing_key: str = "",
    ) -> None:
        super().__init__(message, exchange=exchange, routing_key=routing_key)
        self.failures = failures
        self.confirmed = confirmed


class PublishNacked(PublishError):
    """The broker answered the publish with a negative confirm."""


class Unroutable(PublishError):
    """A ``mandatory`` publish found no queue bound to take it."""


class NoRoute(Unroutable):
    """An RPC request found no server listening for its procedure."""


class NoServer(NoRoute):
    """An RPC service's queue exists (a server ran once), but no server consumes it now.

    Raised well before the call's timeout: a call that waits longer than a moment asks
    the broker whether anything consumes the service's queue.
    """


@dataclass(frozen=True, slots=True)
class TopologyProblem:
    """One problem found in a topology file: where it is and what is wrong.

    Attributes:
        file: the file, as it was named.
        line: the 1-based line of the offending key or item (0: the file itself, e.g.
            one that does not exist).
        path: the key path, e.g. ``"queues[3].arguments.x-max-length"`` (``""`` for the
            file as a whole).
        message: what is wrong, e.g. ``"must be an integer"``.
    """

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class TopologyError(BurrowError):
    """Bad topology, or a declaration the broker refused.

    Attributes:
        entity: what was at fault, e.g. ``"queue 'billing.charge'"``.
        argument: the argument that differed, when known (``"x-max-length"``).
        source: where the definition came from (``"topology.yaml:12"``), when known.
        errors: every problem found in a topology file, when the error comes from one.
    """

    def __init__(
        self,
        message: str,
        *,
        entity: str | None = None,
        argument: str | None = None,
        source: str | None = None,
        errors: Sequence[TopologyProblem] = (),
    ) -> None:
        super().__init__(message)
        self.entity = entity
        self.argument = argument
        self.source = source
        self.errors: list[TopologyProblem] = list(errors)


class DecodeError(BurrowError):
    """A payload did not decode or did not validate.

    Attributes:
        reason: a one-line explanation that names the field at fault when there is one.
        errors: pydantic's structured errors, when validation failed.
    """

    def __init__(self, reason: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


class EncodeError(BurrowError):
    """A value could not be encoded for the wire (a body that is not JSON-able, a result
    that does not fit its RPC handler's return annotation).

    Attributes:
        reason: a one-line explanation that names the type or field at fault.
        errors: pydantic's structured errors, when validation failed.
    """

    def __init__(self, reason: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


class TooManyRedeliveries(BurrowError):
    """A message was delivered too often without ever being settled: it crashed or hung
    the consumer each time, so it was dead-lettered instead of handled again.

    Never raised to callers: its name is the ``x-exception-type`` of the dead-lettered
    copy (and the type of an RPC error reply), so that tools can select such messages.

    Attributes:
        count: the broker's delivery count of the message.
        limit: the consumer's ``max_redeliveries``.
        reason: the explanation recorded with the copy.
    """

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        self.reason = (
            f"redelivered {count} times without being settled (limit {limit}): each "
            "delivery crashed or hung the consumer, or its connection dropped"
        )
        super().__init__(self.reason)


class HandlerTimeout(BurrowError):
    """A handler ran past its route's ``timeout=`` and was cancelled.

    The attempt counts as failed: it is retried under the route's retry policy, then
    dead-lettered with ``x-exception-type: HandlerTimeout`` (an RPC caller receives a
    :class:`RemoteError` of that type). Handlers do not catch it: it is raised in
    their place once they were cancelled.

    Attributes:
        handler: the handler's ``module.qualname``.
        timeout: the route's timeout, in seconds.
    """

    def __init__(self, message: str, *, handler: str = "", timeout: float = 0.0) -> None:
        super().__init__(message)
        self.handler = handler
        self.timeout = timeout


class LifespanError(BurrowError):
    """The App's ``lifespan=`` raised while it was entered (the App does not start) or
    exited (the App still closed); the lifespan's own exception is the ``__cause__``.

    Attributes:
        lifespan: the lifespan factory's ``module.qualname``.
    """

    def __init__(self, message: str, *, lifespan: str = "") -> None:
        super().__init__(message)
        self.lifespan = lifespan


class RpcError(BurrowError):
    """An RPC call failed.

    Attributes:
        procedure: the procedure called, ``"<service>.<method>"``.
        correlation_id: the correlation id of the call.
    """

    def __init__(
        self, message: str, *, procedure: str = "", correlation_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.procedure = procedure
        self.correlation_id = correlation_id


class RpcTimeout(RpcError):
    """No reply came within the call's timeout.

    Attributes:
        timeout: the timeout, in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        procedure: str = "",
        correlation_id: str | None = None,
        timeout: float = 0.0,
    ) -> None:
        super().__init__(message, procedure=procedure, correlation_id=correlation_id)
        self.timeout = timeout


class RemoteError(RpcError):
    """The remote handler raised; carries the remote exception's type name and message.

    Attributes:
        type: the remote exception's plain class name (``"OutOfStock"``, never a
            qualname such as ``"reserve.<locals>.OutOfStock"``), or one of the server's
            own: ``"ValidationError"``, ``"UnknownProcedure"``, ``"ReplyInvalid"``.
        module: the module defining the remote exception class (``"shop.stock"``,
            ``"builtins"``); ``None`` for the server's own types and for replies of
            servers that predate the field.
        remote_message: the remote exception's message.
        details: structured details (validation errors, for instance), or ``None``.
        traceback: the remote traceback, only when the server chose to send it.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str,
        remote_message: str,
        module: str | None = None,
        procedure: str = "",
        correlation_id: str | None = None,
        details: Any = None,
        traceback: str | None = None,
    ) -> None:
        super().__init__(message, procedure=procedure, correlation_id=correlation_id)
        self.type = type
        self.module = module
        self.remote_message = remote_message
        self.details = details
        self.traceback = traceback
