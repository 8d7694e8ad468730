"""Test your handlers without a broker: the in-memory transport and a test client.

:class:`TestClient` runs your app on an in-process broker that behaves like RabbitMQ
(routing, acks, retries, dead-lettering, RPC), so a test publishes a message, waits
until every handler is done, and looks at the outcome::

    from burrowmq.testing import TestClient
    from myservice import app, charged

    async def test_charge_is_recorded() -> None:
        async with TestClient(app) as client:
            await client.publish_and_wait("billing", Charge(order_id="1"), routing_key="charge")
            assert charged == ["1"]
            assert client.dead_letters("billing.charge") == []

The app you pass is left untouched: the client runs a copy of it
(:meth:`burrowmq.App.replace` with the memory transport) with the same routes, topology
and every other setting, so one module-level app serves any number of tests. Each client
gets a broker of its own unless you give two clients the same ``url``. With the pytest
plugin, the ``burrowmq_client`` fixture does the same for the app your
``burrowmq_app`` fixture returns.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from burrowmq.app import App
from burrowmq.exceptions import StateError
from burrowmq.framework.clock import Clock, FakeClock
from burrowmq.framework.transport import Properties
from burrowmq.memory.broker import MemoryBroker
from burrowmq.memory.message import PublishRecord
from burrowmq.memory.transport import MemoryTransport
from burrowmq.routing.dead_letter import (
    HEADER_EXCEPTION_MESSAGE,
    HEADER_EXCEPTION_TYPE,
    HEADER_RETRY_COUNT,
    dead_letter_queue,
)
from burrowmq.routing.scheduler import schedule_queue
from burrowmq.topology.apply import declare_topology
from burrowmq.topology.export import shared_topology

__all__ = [
    "Captured",
    "DeadLetter",
    "FakeClock",
    "MemoryBroker",
    "MemoryTransport",
    "TestClient",
    "pending_work",
    "wait_idle",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Captured:
    """A message seen by the test client: published, queued or dead-lettered.

    Attributes:
        exchange: the exchange it was published (or dead-lettered) to.
        routing_key: its routing key.
        body: the raw body.
        properties: its AMQP properties.
        queues: the queues it reached, for a published message.
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: Properties
    queues: frozenset[str] = field(default_factory=frozenset)

    @property
    def headers(self) -> dict[str, Any]:
        """The AMQP headers."""
        return self.properties.headers

    def json(self) -> Any:
        """The body, parsed as JSON."""
        return json.loads(self.body)

    def decode(self, type_: type[T]) -> T:
        """The body, validated as ``type_`` (a pydantic model or any type pydantic knows).

        Raises:
            pydantic.ValidationError: the body does not fit ``type_``.
        """
        return TypeAdapter(type_).validate_json(self.body)


@dataclass(frozen=True, slots=True)
class DeadLetter(Captured):
    """A message in a dead-letter queue, with why it got there."""

    @property
    def exception_type(self) -> str | None:
        """``x-exception-type``: the exception (or ``Reject``) that dead-lettered it."""
        value = self.headers.get(HEADER_EXCEPTION_TYPE)
        return value if isinstance(value, str) else None

    @property
    def exception_message(self) -> str | None:
        """``x-exception-message``: the exception's message or the rejection reason."""
        value = self.headers.get(HEADER_EXCEPTION_MESSAGE)
        return value if isinstance(value, str) else None

    @property
    def retry_count(self) -> int:
        """``x-retry-count``: how many retries it had before it was given up."""
        value = self.headers.get(HEADER_RETRY_COUNT, 0)
        return value if isinstance(value, int) else 0

    @property
    def reason(self) -> str | None:
        """Why it was dead-lettered: burrowmq's exception message, else the broker's
        ``x-death`` reason (``rejected``, ``expired``, ``maxlen``, ``delivery_limit``)."""
        if self.exception_message is not None:
            return self.exception_message
        deaths = self.headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            reason = deaths[0].get("reason")
            return reason if isinstance(reason, str) else None
        return None


def pending_work(broker: MemoryBroker, *, held: Collection[str] = ()) -> list[str]:
    """Describe what is still in motion in ``broker``; empty when it is idle.

    In motion: messages delivered and not settled, ready messages in a queue that has
    consumers, and messages waiting out a TTL that dead-letters them somewhere (delayed
    retries), unless the broker runs on a :class:`FakeClock`: then they wait for the
    test to move it. Messages resting in a queue nobody consumes, such as a dead-letter
    queue, are not.
    """
    busy: list[str] = []
    fake = isinstance(broker.clock, FakeClock)  # TTLs wait for the test to move the clock
    for queue in broker.queues.values():
        if queue.unacked and queue.name not in held:
            busy.append(f"{queue.unacked} unacked from {queue.name!r}")
        if queue.ready and queue.consumers:
            busy.append(f"{len(queue.ready)} ready in {queue.name!r}")
        elif queue.arguments.get("x-dead-letter-exchange") is not None and not fake:
            waiting = sum(1 for m in queue.ready if m.expires_at is not None)
            if waiting:
                busy.append(f"{waiting} waiting out a TTL in {queue.name!r}")
    return busy


async def wait_idle(
    broker: MemoryBroker, timeout: float = 5.0, *, held: Collection[str] = ()
) -> None:
    """Wait until ``broker`` is idle: every message handled, retried or dead-lettered.

    Args:
        broker: the in-memory broker.
        timeout: seconds to wait at most.
        held: queues whose unacked messages are held on purpose (schedules' state).

    Raises:
        TimeoutError: still busy after ``timeout``; the message says with what.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await asyncio.sleep(0)  # let deliveries scheduled just now go out first
        busy = pending_work(broker, held=held)
        if not busy:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"still busy after {timeout:g}s: {'; '.join(busy)}")
        try:
            await asyncio.wait_for(broker.changed(), remaining)
        except TimeoutError:
            continue


class TestClient:
    """Run an app on the in-memory broker, publish to it and inspect the outcome.

    Args:
        app: the app to test; it is not started itself (a copy with the same routes
            and settings runs on the memory broker), so it can serve many tests.
        url: the ``memory://`` broker to use; clients (and apps) with the same URL share
            it. Default: a broker of this client's own.
        timeout: the default seconds :meth:`publish_and_wait` and :meth:`wait_idle`
            wait before they raise ``TimeoutError``.
        fast_retries: retry at once whatever the routes' ``Retry(wait=...)``, so a test
            of a handler that fails with waits of seconds takes milliseconds. Attempts,
            ``Message.attempt`` and dead letters are as without it; only the waits go,
            and with them the trips through the broker's delay ladder (its
            ``burrowmq.delay.*`` queues stay empty).
        dependency_overrides: factories to call in place of others in the handlers'
            :class:`~burrowmq.Depends` (``{get_db: fake_db}``), on top of the app's
            own ``dependency_overrides``.
        clock: the time the broker's delays and the app's schedules run on; with a
            :class:`FakeClock`, :meth:`advance` moves it (an hour's delay in
            milliseconds). Default: the real time.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        app: App | None = None,
        *,
        url: str | None = None,
        timeout: float = 5.0,
        fast_retries: bool = False,
        dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.url = url or f"memory://test-{uuid.uuid4().hex[:12]}"
        self.clock = clock
        self.transport = MemoryTransport(url=self.url, clock=clock)
        base = app if app is not None else App(url=self.url)
        self.app = base.replace(
            transport=self.transport,
            retry_waits=not fast_retries,
            dependency_overrides={
                **base.config.dependency_overrides,
                **(dependency_overrides or {}),
            },
        )
        self.timeout = timeout
        self.published: list[Captured] = []
        """Every message published while the client runs, by the test or by handlers."""

    @property
    def broker(self) -> MemoryBroker:
        """The in-memory broker the app runs on."""
        return self.transport.broker

    async def __aenter__(self) -> TestClient:
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
        """Start the app on the memory broker and begin capturing publishes.

        An app that declares nothing (``declare=False``) finds its topology declared on
        the broker first, as an operator's ``topology apply`` would have.
        """
        if not self.app.config.declare:
            # Kept open until the app is connected: a named memory broker lives while a
            # connection to it does.
            operator = MemoryTransport(url=self.url)
            await operator.connect()
            try:
                await declare_topology(operator, shared_topology(self.app.topology()))
                await self.app.start()
            finally:
                await operator.close()
        else:
            await self.app.start()
        self.broker.add_listener(self._capture)

    async def stop(self) -> None:
        """Stop the app (in-flight handlers finish first); captures stay readable."""
        self.broker.remove_listener(self._capture)
        await self.app.stop()

    def _capture(self, record: PublishRecord) -> None:
        self.published.append(
            Captured(
                record.exchange,
                record.routing_key,
                record.body,
                record.properties,
                record.queues,
            )
        )

    async def publish(
        self,
        exchange: str,
        body: Any,
        *,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """Publish as :meth:`burrowmq.App.publish` does, without waiting for handlers.

        Returns:
            The message id.
        """
        return await self.app.publish(
            exchange, body, routing_key=routing_key, headers=headers, **options
        )

    async def publish_and_wait(
        self,
        exchange: str,
        body: Any,
        *,
        routing_key: str = "",
        headers: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> str:
        """Publish, then wait until every handler is done with what followed.

        Done means the broker is idle: the message and whatever the handlers published
        in turn were acked or dead-lettered, and retries delayed through the broker came
        back and finished (they take their real delay).

        Args:
            exchange: the exchange (``""``: the default exchange).
            body: a pydantic model or JSON-able value, ``str`` or ``bytes``.
            routing_key: the routing key.
            headers: AMQP headers.
            timeout: seconds to wait at most (default: the client's).
            **options: any other keyword of :meth:`burrowmq.App.publish`
                (``mandatory``, ``correlation_id``, ``expiration``, ...).

        Returns:
            The message id.

        Raises:
            TimeoutError: handlers were still busy after ``timeout``.
            Unroutable: ``mandatory=True`` and no queue took it.
        """
        message_id = await self.publish(
            exchange, body, routing_key=routing_key, headers=headers, **options
        )
        await self.wait_idle(timeout)
        return message_id

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every message in motion was handled; see :func:`wait_idle`.

        Raises:
            TimeoutError: still busy after ``timeout`` seconds.
        """
        held = [schedule_queue(self.app.name, s).name for s in self.app.schedules]
        await wait_idle(self.broker, self.timeout if timeout is None else timeout, held=held)

    async def advance(self, by: timedelta | float) -> None:
        """Move the client's :class:`FakeClock` ``by`` on, then wait until idle.

        Every delay and schedule due on the way runs, in time order, each followed by
        what it set off (handlers, their publishes), as in real time.

        Raises:
            StateError: the client was not given a :class:`FakeClock`.
            TimeoutError: handlers were still busy after the client's timeout.
        """
        if not isinstance(self.clock, FakeClock):
            raise StateError("advance() needs TestClient(app, clock=FakeClock())")
        await self.clock.advance(by, settle=self.wait_idle)

    @overload
    async def call(
        self,
        procedure: Callable[..., Awaitable[T]],
        payload: Any = None,
        *,
        returns: None = None,
        timeout: float | None = None,
    ) -> T: ...
    @overload
    async def call(
        self,
        procedure: str | Callable[..., Awaitable[Any]],
        payload: Any = None,
        *,
        returns: type[T],
        timeout: float | None = None,
    ) -> T: ...
    @overload
    async def call(
        self,
        procedure: str | Callable[..., Awaitable[Any]],
        payload: Any = None,
        *,
        returns: Any = None,
        timeout: float | None = None,
    ) -> Any: ...
    async def call(
        self,
        procedure: str | Callable[..., Awaitable[Any]],
        payload: Any = None,
        *,
        returns: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Call a remote procedure the app (or another on the same broker) serves:
        by name, or by the decorated RPC handler (typed as its return annotation).

        Returns:
            The reply, decoded as ``returns`` (a pydantic model or type), else JSON data.

        Raises:
            NoRoute: nothing serves the procedure.
            RemoteError: the handler raised.
            RpcTimeout: no reply within ``timeout`` (default: the client's).
        """
        return await self.app.call(
            procedure,
            payload,
            returns=returns,
            timeout=self.timeout if timeout is None else timeout,
        )

    def published_to(self, exchange: str, routing_key: str | None = None) -> list[Captured]:
        """The captured publishes to ``exchange`` (and ``routing_key``, when given)."""
        return [
            m
            for m in self.published
            if m.exchange == exchange and (routing_key is None or m.routing_key == routing_key)
        ]

    def messages(self, queue: str) -> list[Captured]:
        """The messages waiting in ``queue`` (ready, not delivered), in order.

        Raises:
            KeyError: no such queue.
        """
        return [
            Captured(m.exchange, m.routing_key, m.body, m.properties, frozenset({queue}))
            for m in self.broker.messages(queue)
        ]

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The dead-lettered messages of the route consuming ``queue``, oldest first.

        They are read from the route's dead-letter queue (``<queue>.dlq``, or the base
        its ``dead_letter=`` names); ``queue`` may also name a dead-letter queue itself.

        Raises:
            KeyError: neither a route's queue nor an existing queue.
        """
        target = dead_letter_queue(queue)
        for route in self.app.routes:
            if route.queue is not None and route.queue.name == queue:
                base = route.dead_letter_base()
                if base is None:
                    return []
                target = dead_letter_queue(base)
        if target not in self.broker.queues and queue in self.broker.queues:
            target = queue
        return [
            DeadLetter(m.exchange, m.routing_key, m.body, m.properties, frozenset({target}))
            for m in self.broker.messages(target)
        ]
