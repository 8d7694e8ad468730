"""Publishing on a confirming channel: one publish and its confirm, and the publishes in flight.

Part of the AMQP transport. A publish returns only once the broker confirmed it; a
return (mandatory, unroutable), a nack, a channel error or a lost connection raises one of
burrowmq's errors (:mod:`burrowmq.amqp.errors`), never a silent success, never a hang.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
from pamqp import commands as spec

from burrowmq.amqp.errors import PUBLISH, Context, fail
from burrowmq.amqp.lean import LeanPublisher
from burrowmq.amqp.wire import to_pamqp
from burrowmq.exceptions import ConnectionLost, PublishNacked
from burrowmq.framework.transport import Properties

__all__ = ["InFlight", "publish_confirmed"]


async def publish_confirmed(
    channel: aiormq.abc.AbstractChannel,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: Properties,
    mandatory: bool,
    timeout: float | None,
    lean: LeanPublisher | None = None,
) -> None:
    """Publish on a confirming channel and wait for the confirm.

    ``lean`` (the channel's :class:`~burrowmq.amqp.lean.LeanPublisher`, where aiormq
    allows one) publishes instead of ``basic_publish``; errors are the same either way.

    Raises:
        Unroutable: ``mandatory`` and no queue took it.
        PublishNacked: the broker nacked it.
        PublishError: a header AMQP cannot carry, no such exchange, another channel
            error, or no confirm within ``timeout``.
        ConnectionLost: the connection dropped before the confirm.
    """
    try:
        if lean is None:
            confirm = await channel.basic_publish(  # type: ignore[call-arg]
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=to_pamqp(properties),
                mandatory=mandatory,
                timeout=timeout,
                # The confirm is awaited, and it can only follow the write: waiting for
                # the socket drain as well would cost one more wake-up for nothing.
                wait=False,
            )
        elif timeout is None:
            confirm = await lean.publish(exchange, routing_key, body, properties, mandatory)
        else:
            async with asyncio.timeout(timeout):
                confirm = await lean.publish(exchange, routing_key, body, properties, mandatory)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the caller is being cancelled: not ours to turn into an error
        # aiormq cancels the confirms of a connection that died (heartbeats missed).
        raise ConnectionLost(
            f"connection lost before the broker confirmed a message for exchange "
            f"{exchange!r}, routing key {routing_key!r}"
        ) from None
    except Exception as exc:
        fail(
            exc,
            Context(
                PUBLISH,
                f"exchange {exchange!r}",
                exchange=exchange,
                routing_key=routing_key,
                headers=properties.headers,
                timeout=timeout,
            ),
        )
    if isinstance(confirm, spec.Basic.Nack | spec.Basic.Reject):
        raise PublishNacked(
            f"the broker refused (nacked) a message for exchange {exchange!r}",
            exchange=exchange,
            routing_key=routing_key,
        )


class InFlight:
    """The publishes waiting on one connection, so that losing it fails them at once.

    aiormq rejects the confirms of a closed channel, but a publish can also be stuck
    before that, waiting for room in the dead connection's write queue; nothing would
    ever wake it. Each publish runs in a cancellable scope registered here, and
    :meth:`fail_all` (called when the connection is lost) ends every one of them with
    :class:`ConnectionLost`: never a silent success, never a hang.
    """

    __slots__ = ("_scopes",)

    def __init__(self) -> None:
        self._scopes: set[asyncio.Timeout] = set()

    async def run(self, publish: Any, what: str) -> None:
        """Await ``publish`` (a coroutine); raise ConnectionLost if the connection goes."""
        scope = asyncio.timeout(None)
        scopes = self._scopes
        try:
            async with scope:
                scopes.add(scope)
                try:
                    await publish
                finally:
                    scopes.discard(scope)
        except TimeoutError:
            if scope.expired():
                raise ConnectionLost(
                    f"connection lost before the broker confirmed {what}"
                ) from None
            raise

    def fail_all(self) -> None:
        """End every publish still waiting (the connection is gone)."""
        if not self._scopes:
            return
        now = asyncio.get_running_loop().time()
        for scope in list(self._scopes):
            scope.reschedule(now)
