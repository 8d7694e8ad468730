"""The blocking facade: an App's publish and call, for Django, Flask and scripts.

``Client`` runs one :class:`~burrowmq.App` without routes on an event loop of its own,
in a background thread, and hands every blocking call to it with
:func:`asyncio.run_coroutine_threadsafe`: there is no second implementation of
publishing or RPC here, only the bridge between threads. It may import the App, and
nothing in burrowmq imports it.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import math
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, overload

from burrowmq.app import App
from burrowmq.exceptions import (
    BrokerUnreachable,
    ConfigurationError,
    ConnectionLost,
    PublishError,
    RpcTimeout,
    StateError,
)
from burrowmq.framework.instrument import Instrument
from burrowmq.framework.log import get_logger
from burrowmq.framework.tls import TLS

__all__ = ["Client"]

_log = get_logger()

R = TypeVar("R")
T = TypeVar("T")

# The async core enforces every timeout itself; the facade waits this much longer
# before it gives up on the loop thread, so that the core's own error is what surfaces.
_GRACE = 1.0

# A forked child's inherited loops, threads and connections: kept referenced and never
# touched, so that no finalizer closes them or writes to the sockets the parent shares.
_abandoned: list[tuple[Any, ...]] = []
_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class Client:
    """A blocking client of RabbitMQ: publish, publish_many and call from plain threads.

    The client starts one background event-loop thread and connects on first use (or
    on ``with``), and is safe to share between any number of threads. After
    ``os.fork()`` (a pre-forking server's workers), the child's first use drops the
    connections it inherited, without a word on them, and connects anew.

    Args:
        url: a broker URL, a list of them (cluster nodes, tried in turn) or
            ``"memory://"``; default ``$BURROWMQ_URL``, else
            ``amqp://guest:guest@localhost:5672/``.
        name: the connection name shown on the broker.
        timeout: the default of every blocking method's ``timeout=``, in seconds
            (connecting on first use counts against it).
        connect_timeout: seconds allowed for one connection attempt.
        recovery_wait: while a connection is being recovered, how many seconds a
            publish waits for it before raising :class:`~burrowmq.ConnectionLost`.
        tls: TLS settings for ``amqps://`` URLs, as the App takes them.
        instrumentation: instruments observing the publishes and calls.

    Raises:
        ConfigurationError: a bad URL or option.
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        name: str = "burrowmq-sync",
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        recovery_wait: float = 15.0,
        tls: TLS | ssl.SSLContext | None = None,
        instrumentation: Sequence[Instrument] = (),
    ) -> None:
        self._timeout = _seconds(timeout, "Client(timeout=...)")
        self._template = App(
            url=url,
            name=name,
            connect_timeout=connect_timeout,
            recovery_wait=recovery_wait,
            rpc_timeout=self._timeout,
            tls=tls,
            instrumentation=instrumentation,
        )
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._app: App | None = None
        self._closed = False
        _clients.add(self)

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def connect(self, *, timeout: float | None = None) -> None:
        """Start the loop thread and connect now, rather than on first use.

        Raises:
            StateError: the client is closed, or this is its own loop thread.
            BrokerUnreachable: no broker URL answered within ``timeout``.
        """
        self._running(time.monotonic() + self._timeout_or_default(timeout), "connect")

    def close(self, *, timeout: float | None = None) -> None:
        """Close the connections, stop the loop and join its thread. Idempotent.

        Operations still waiting fail with :class:`~burrowmq.ConnectionLost`.

        Raises:
            StateError: called from the client's own loop thread.
        """
        seconds = self._timeout_or_default(timeout)
        self._refuse_own_loop("close")
        with self._locked(seconds, "close"):
            if self._closed:
                return
            self._closed = True
            if self._pid != os.getpid():
                self._abandon()
                return
            loop, thread, app = self._loop, self._thread, self._app
            self._loop = self._thread = self._app = None
        if loop is None or thread is None:
            return
        deadline = time.monotonic() + seconds
        try:
            if app is not None:
                stopping = asyncio.run_coroutine_threadsafe(app.stop(), loop)
                try:
                    stopping.result(seconds)
                except (TimeoutError, concurrent.futures.CancelledError):
                    stopping.cancel()
                    _log.warning("sync_client_close_timed_out", timeout=seconds)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(max(deadline - time.monotonic(), 0.0) + _GRACE)

    # -- publishing and calling ------------------------------------------------------

    def publish(
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
        """Publish a message and block until the broker confirmed it.

        Arguments are those of :meth:`burrowmq.App.publish`; ``timeout`` (default: the
        client's) bounds the whole call, connecting included.

        Returns:
            The message id.

        Raises:
            StateError: the client is closed, or this is its own loop thread.
            BrokerUnreachable: the first use could not connect in time.
            ConfigurationError: ``delay`` or ``partition_key`` cannot be used here (as
                :meth:`burrowmq.App.publish` says).
            EncodeError: the body cannot be encoded.
            Unroutable: ``mandatory`` and nothing is bound.
            PublishNacked: the broker refused it.
            PublishError: the broker refused the publish, or no confirm within
                ``timeout``.
            ConnectionLost: the connection dropped (or the client closed) before the
                confirm.
        """
        deadline = time.monotonic() + self._timeout_or_default(timeout)
        app = self._running(deadline, "publish")
        return self._wait(
            app.publish(
                exchange,
                body,
                routing_key=routing_key,
                headers=headers,
                mandatory=mandatory,
                persistent=persistent,
                message_id=message_id,
                correlation_id=correlation_id,
                reply_to=reply_to,
                expiration=expiration,
                priority=priority,
                content_type=content_type,
                compress=compress,
                timeout=_left(deadline),
                delay=delay,
                partition_key=partition_key,
            ),
            deadline,
            lambda: PublishError(
                f"no confirm within the timeout for exchange {exchange!r}",
                exchange=exchange,
                routing_key=routing_key,
            ),
        )

    def publish_many(
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
        """Publish many messages, up to ``window`` confirms outstanding; block until all
        are confirmed or failed.

        Arguments are those of :meth:`burrowmq.App.publish_many`; ``bodies`` is read in
        the calling thread.

        Returns:
            The message ids, in order.

        Raises:
            StateError: the client is closed, or this is its own loop thread.
            ConfigurationError: ``window`` is not a positive int.
            PublishBatchError: some messages were not confirmed (``failures`` lists
                them by index; the others were confirmed).
            PublishError: the batch did not finish within ``timeout``.
        """
        items = list(bodies)  # the caller's iterable is read here, not in the loop thread
        deadline = time.monotonic() + self._timeout_or_default(timeout)
        app = self._running(deadline, "publish")
        return self._wait(
            app.publish_many(
                exchange,
                items,
                routing_key=routing_key,
                headers=headers,
                mandatory=mandatory,
                persistent=persistent,
                window=window,
                timeout=_left(deadline),
            ),
            deadline,
            lambda: PublishError(
                f"{len(items)} messages for exchange {exchange!r} were not all confirmed "
                f"within the timeout",
                exchange=exchange,
                routing_key=routing_key,
            ),
        )

    @overload
    def call(
        self,
        procedure: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: type[R],
        headers: Mapping[str, Any] | None = None,
    ) -> R: ...
    @overload
    def call(
        self,
        procedure: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Any: ...
    def call(
        self,
        procedure: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        returns: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call a remote procedure and block until its reply.

        Arguments are those of :meth:`burrowmq.App.call`, with the procedure named
        (``"<service>.<method>"``); ``returns=Model`` decodes (and types) the reply.

        Returns:
            The reply, decoded.

        Raises:
            StateError: the client is closed, or this is its own loop thread.
            ConfigurationError: a malformed procedure name or timeout.
            BrokerUnreachable: the first use could not connect in time.
            NoRoute: nothing serves the procedure's service (:class:`~burrowmq.NoServer`
                when its queue exists but nothing consumes it).
            RpcTimeout: no reply within ``timeout``.
            RemoteError: the server answered with an error.
            ConnectionLost: the connection dropped (or the client closed) before the
                reply came.
            EncodeError: the payload cannot be encoded.
            DecodeError: the reply does not fit ``returns``.
        """
        if not isinstance(procedure, str):
            raise ConfigurationError(
                f"Client.call() takes a procedure name '<service>.<method>', got {procedure!r}"
            )
        seconds = self._timeout_or_default(timeout)
        deadline = time.monotonic() + seconds
        app = self._running(deadline, "call")
        return self._wait(
            app.call(
                procedure,
                payload,
                timeout=max(_left(deadline), 0.001),
                returns=returns,
                headers=headers,
            ),
            deadline,
            lambda: RpcTimeout(
                f"no reply from {procedure!r} within {seconds}s",
                procedure=procedure,
                timeout=seconds,
            ),
        )

    # -- the bridge ------------------------------------------------------------------

    def _timeout_or_default(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else _seconds(timeout, "timeout=")

    def _refuse_own_loop(self, what: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self._loop:
            raise StateError(
                f"cannot {what} from the sync client's own event loop thread: it would wait "
                f"on itself; in async code use burrowmq.App and await it"
            )

    def _locked(self, seconds: float, what: str) -> _Held:
        if not self._lock.acquire(timeout=max(seconds, 0.0)):
            raise StateError(f"could not {what} within {seconds}s: the client is busy starting")
        return _Held(self._lock)

    def _running(self, deadline: float, what: str) -> App:
        """The running App, starting the loop thread and connecting if needed."""
        self._refuse_own_loop(what)
        with self._locked(_left(deadline), "connect"):
            if self._closed:
                raise StateError("the sync client is closed")
            if self._pid != os.getpid():
                self._abandon()
            if self._app is not None:
                return self._app
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_run_loop, args=(loop,), name="burrowmq-sync-loop", daemon=True
                )
                self._thread.start()
            app = self._template.replace()
            starting = asyncio.run_coroutine_threadsafe(app.start(), loop)
            try:
                starting.result(_left(deadline))
            except TimeoutError:
                starting.cancel()
                asyncio.run_coroutine_threadsafe(app.stop(), loop)
                raise BrokerUnreachable(
                    "the sync client could not connect within the timeout"
                ) from None
            self._app = app
            return app

    def _abandon(self) -> None:
        """In a forked child: forget the parent's loop, thread and connections.

        They are kept referenced, never closed: closing would speak AMQP (or TLS) on
        sockets the parent still uses, and a finalizer would try to.
        """
        _abandoned.append((self._loop, self._thread, self._app))
        self._loop = self._thread = self._app = None
        self._pid = os.getpid()

    def _wait(
        self,
        coro: Coroutine[Any, Any, T],
        deadline: float,
        timed_out: Callable[[], Exception],
    ) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise StateError("the sync client is closed")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop closed under us: close() ran in another thread
            coro.close()
            raise StateError("the sync client is closed") from None
        try:
            return future.result(_left(deadline) + _GRACE)
        except TimeoutError:
            future.cancel()
            raise timed_out() from None
        except concurrent.futures.CancelledError:
            raise ConnectionLost("the sync client closed before the operation finished") from None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._app is not None else "idle"
        return f"<burrowmq.sync.Client {self._template.name} {state}>"


class _Held:
    """The client's lock, held: released when the ``with`` block ends."""

    __slots__ = ("_lock",)

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _seconds(value: float, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread: run until stopped, then finish what is left and close."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _after_fork_in_child() -> None:
    # A lock the parent's threads held at the fork would stay held forever in the child.
    for client in list(_clients):
        client._lock = threading.Lock()


def _close_all() -> None:
    # A client left open does not hold up the exit (its thread is a daemon); this closes
    # its connections politely first, briefly.
    for client in list(_clients):
        if not client._closed and client._pid == os.getpid():
            try:
                client.close(timeout=2.0)
            except Exception as exc:  # at exit, nothing to raise to
                _log.warning("sync_client_close_failed", error=str(exc))


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
