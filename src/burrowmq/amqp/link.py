"""One AMQP connection of the transport, with its own recovery, back-off and blocked state.

The transport keeps two links, one for consuming (and declaring) and one for publishing,
as RabbitMQ advises: a broker under a memory or disk alarm blocks the connections that
publish, and a consumer on its own connection keeps acking through it.

A link recovers on its own when its connection is lost: one recovery at a time, the URLs
tried in turn, the pause between attempts growing exponentially with jitter up to a cap
(tenacity's ``wait_exponential_jitter``). The pause is not reset by a reconnection that
is lost again at once, so a connection that keeps dropping (a broker that closes it, a
flapping network) is retried ever more slowly instead of hundreds of times a second; it
is reset once a connection has stayed up for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import aiormq
import tenacity

from burrowmq.amqp.errors import CONNECT, RECOVERY_ERRORS, Context, describe_exc, translate
from burrowmq.exceptions import BrokerUnreachable, ConnectionLost
from burrowmq.framework.log import get_logger
from burrowmq.framework.urls import describe_target, mask_url, vhost_of

__all__ = ["Backoff", "Link"]

_log = get_logger()

OnUp = Callable[[aiormq.abc.AbstractConnection], Awaitable[None]]
"""Run after each (re)connection, before the link counts as connected."""
OnDown = Callable[[], None]
"""Told at once when the connection is lost."""


class Backoff:
    """The pauses between reconnection attempts: exponential, jittered, capped.

    Args:
        initial: the first pause, in seconds.
        cap: the longest pause.
        stable: a connection that stayed up this long resets the pauses.
    """

    def __init__(self, *, initial: float = 0.5, cap: float = 30.0, stable: float = 10.0) -> None:
        self._wait = tenacity.wait_exponential(multiplier=initial, max=cap) + tenacity.wait_random(
            0, initial
        )
        self._stable = stable
        self._attempt = 0
        self._up_since: float | None = None

    @property
    def attempt(self) -> int:
        """The attempts made since the connection was last stable."""
        return self._attempt

    def lost(self) -> None:
        """The connection was lost: start over only if it had been up long enough."""
        if self._up_since is not None and time.monotonic() - self._up_since >= self._stable:
            self._attempt = 0
        self._up_since = None

    def pause(self) -> float:
        """The pause before the next attempt (the first after a stable connection: 0)."""
        self._attempt += 1
        if self._attempt == 1:
            return 0.0
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = self._attempt - 1
        return float(self._wait(state))

    def connected(self) -> None:
        """A connection is up (the pauses reset once it stays up)."""
        self._up_since = time.monotonic()


class Link:
    """One connection: opened on any of the URLs, recovered when lost, its blocks logged.

    Args:
        urls: broker URLs, tried in turn.
        role: ``"consume"`` or ``"publish"``, for logs and the connection name.
        connection_name: shown in the management UI (the role is appended).
        connect_timeout: seconds allowed for one connection attempt.
        on_up: run after each (re)connection (declare, restart consumers, open channels).
        on_down: told when the connection is lost.
        backoff: the pauses between reconnection attempts.
        recover: reconnect on its own after a loss (else :meth:`connect` again).
        ssl_context: TLS for ``amqps://`` URLs.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        role: str,
        connection_name: str | None,
        connect_timeout: float,
        on_up: OnUp,
        on_down: OnDown,
        backoff: Backoff | None = None,
        recover: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._urls = tuple(urls)
        self.role = role
        self._name = f"{connection_name} ({role})" if connection_name else None
        self._connect_timeout = connect_timeout
        self._on_up = on_up
        self._on_down = on_down
        self._backoff = backoff or Backoff()
        self._recover_on_loss = recover
        self._ssl_context = ssl_context
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self.connected = asyncio.Event()
        self._closing = False
        self._recovery: asyncio.Task[None] | None = None
        self.node: str | None = None
        self.blocked: str | None = None
        """Why the broker blocked this connection (an alarm), while it does."""
        self.broker_version: tuple[int, ...] = ()
        """The version RabbitMQ announced on the last connection (e.g. ``(3, 10, 8)``)."""

    @property
    def description(self) -> str:
        """The URLs, passwords masked."""
        return ", ".join(mask_url(u) for u in self._urls)

    @property
    def raw(self) -> aiormq.abc.AbstractConnection:
        """The aiormq connection (only while connected)."""
        if self._connection is None:
            raise ConnectionLost(f"the {self.role} connection is not open")
        return self._connection.transport.connection  # type: ignore[union-attr]

    async def _open_any(self) -> aio_pika.abc.AbstractConnection:
        reasons: list[str] = []
        answered = False
        for url in self._urls:
            target = describe_target(url)
            try:
                properties: dict[str, Any] = {}
                if self._name:
                    properties["connection_name"] = self._name
                connection = await aio_pika.connect(
                    url,
                    timeout=self._connect_timeout,
                    client_properties=properties,
                    ssl_context=self._ssl_context,
                )
                self.node = target
                return connection
            except Exception as exc:
                error = translate(exc, Context(CONNECT, target, vhost=vhost_of(url)))
                answered = answered or getattr(error, "answered", False)
                reason = str(error)
                if self._ssl_context is not None and "reset" in reason.lower():
                    # TLS 1.3 reports a refused client certificate only after the
                    # handshake: the client sees the connection reset.
                    reason += (
                        " (over TLS this is how the broker refuses a client that sends no "
                        "certificate, or one it does not accept: TLS(cert_file=, key_file=))"
                    )
                reasons.append(reason)
        targets = tuple(describe_target(u) for u in self._urls)
        raise BrokerUnreachable(
            "cannot reach RabbitMQ at " + "; ".join(reasons), targets=targets, answered=answered
        )

    async def connect(self) -> None:
        """Connect (the first time): no recovery if this fails.

        Raises:
            BrokerUnreachable: no URL answered.
        """
        self._closing = False
        connection = await self._open_any()
        try:
            await self._set_up(connection)
        except BaseException:
            self._closing = True  # a failed start is not a connection loss to recover from
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    async def _set_up(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self._connection = connection
        self.blocked = None
        raw = connection.transport.connection  # type: ignore[union-attr]
        self.broker_version = _version(raw)
        _watch_blocked(raw, self)
        connection.close_callbacks.add(self._on_closed)
        await self._on_up(raw)
        if connection.is_closed:
            # It dropped while we were setting up: its close callback found a recovery
            # already running and left it to us, so this must not count as connected.
            raise ConnectionLost("the connection closed again while it was being set up")
        self._backoff.connected()
        self.connected.set()

    def _on_closed(self, sender: Any, exc: BaseException | None = None) -> None:
        if sender is not self._connection:
            return
        self.connected.clear()
        self.blocked = None
        self._on_down()
        if self._closing or not self._recover_on_loss:
            return
        _log.warning("connection_lost", role=self.role, node=self.node, reason=describe_exc(exc))
        self._backoff.lost()
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(
                self._recover(), name=f"burrowmq-recovery:{self.role}"
            )

    async def _recover(self) -> None:
        while not self._closing:
            pause = self._backoff.pause()
            if pause:
                await asyncio.sleep(pause)
            attempt = self._backoff.attempt
            try:
                connection = await self._open_any()
            except BrokerUnreachable as exc:
                _log.info("reconnect_failed", role=self.role, attempt=attempt, reason=str(exc))
                continue
            try:
                await self._set_up(connection)
            except RECOVERY_ERRORS as exc:
                _log.warning(
                    "recovery_failed", role=self.role, attempt=attempt, reason=describe_exc(exc)
                )
                with contextlib.suppress(Exception):
                    await connection.close()
                continue
            _log.info("connection_recovered", role=self.role, attempt=attempt, node=self.node)
            return

    async def wait(self, timeout: float) -> None:
        """Wait until connected (after a loss), up to ``timeout``.

        Raises:
            ConnectionLost: not connected within ``timeout`` (or closed).
        """
        if self.connected.is_set():
            return
        if self._closing or (self._connection is None and self._recovery is None):
            raise ConnectionLost("the transport is not connected")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise ConnectionLost(
                f"no connection to RabbitMQ ({self.description}) within {timeout:g}s"
            ) from None

    @property
    def is_closed(self) -> bool:
        """Whether the link's current connection is gone."""
        return self._connection is None or self._connection.is_closed

    async def close(self) -> None:
        """Stop recovering and close the connection; idempotent."""
        self._closing = True
        self.connected.clear()
        recovery, self._recovery = self._recovery, None
        if recovery is not None and not recovery.done():
            recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await recovery
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


def _watch_blocked(raw: aiormq.abc.AbstractConnection, link: Link) -> None:
    """Log the broker's ``connection.blocked`` and ``unblocked``, and keep the reason.

    aiormq handles both frames itself (it stops writing while blocked) but tells no one;
    its two handlers are wrapped on this connection. Should aiormq rename them, the
    link simply no longer knows why it is blocked.
    """
    blocked_name = "_Connection__handle_connection_blocked"
    unblocked_name = "_Connection__handle_connection_unblocked"
    on_blocked = getattr(raw, blocked_name, None)
    on_unblocked = getattr(raw, unblocked_name, None)
    if on_blocked is None or on_unblocked is None:
        return

    async def blocked(frame: Any) -> None:
        link.blocked = str(getattr(frame, "reason", "") or "a resource alarm")
        _log.warning("connection_blocked", role=link.role, reason=link.blocked)
        await on_blocked(frame)

    async def unblocked(frame: Any) -> None:
        link.blocked = None
        _log.info("connection_unblocked", role=link.role)
        await on_unblocked(frame)

    setattr(raw, blocked_name, blocked)
    setattr(raw, unblocked_name, unblocked)


def _version(raw: aiormq.abc.AbstractConnection) -> tuple[int, ...]:
    properties = getattr(raw, "server_properties", None) or {}
    text = properties.get("version", b"")
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("ascii", "replace")
    parts = []
    for part in str(text).split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)
