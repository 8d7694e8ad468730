"""Replies to direct reply-to addresses that RabbitMQ 3.x might choke on, sent apart.

RabbitMQ 3.x decodes a direct reply-to address without guarding: an address that names
a node outside the cluster (a well-formed one with a forged node hash, say) makes it
close the whole connection that published the reply, failing every publish in flight
beside it. Malformed addresses are refused before this (their form is checked); for a
well-formed one, the node it names can only be proven by trying. So on RabbitMQ 3.x,
the first reply to each node goes out on a connection of its own, one at a time: if
RabbitMQ closes that connection, only that reply is lost (its caller times out) and the
node is remembered as bad; if the reply is confirmed, the node is good and later replies
to it go out on the publishing connection as any message. RabbitMQ 4 guards the decoding
and drops a reply to an unknown node: there every reply goes out directly.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import aiormq

from burrowmq.amqp.errors import CHANNEL, Context, fail
from burrowmq.amqp.link import Link
from burrowmq.amqp.publishing import publish_confirmed
from burrowmq.exceptions import BurrowError, PublishError
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Properties
from burrowmq.framework.vocabulary import direct_reply_to_node

__all__ = ["ReplyCheck"]

_log = get_logger()
_NODES_KEPT = 1000


class ReplyCheck:
    """Proves the nodes that direct reply-to addresses name, on a connection of its own.

    Args:
        urls: broker URLs, tried in turn.
        connection_name: shown in the management UI (with ``(reply check)`` after it).
        connect_timeout: seconds allowed for one connection attempt.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        connection_name: str | None,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._link = Link(
            urls,
            role="reply check",
            connection_name=connection_name,
            connect_timeout=connect_timeout,
            on_up=self._up,
            on_down=self._down,
            recover=False,
            ssl_context=ssl_context,
        )
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self.good: set[bytes] = set()
        self.bad: set[bytes] = set()

    async def _up(self, raw: aiormq.abc.AbstractConnection) -> None:
        try:
            self._channel = await raw.channel(publisher_confirms=True)
        except Exception as exc:
            fail(exc, Context(CHANNEL, "on the reply check connection"))

    def _down(self) -> None:
        self._channel = None

    def needed(self, routing_key: str) -> bool:
        """Whether a reply to ``routing_key`` must be proven first (its node is not yet)."""
        return direct_reply_to_node(routing_key) not in self.good

    async def publish(
        self, routing_key: str, body: bytes, properties: Properties, *, timeout: float | None
    ) -> None:
        """Publish one reply on the check connection, learning whether its node is good.

        Raises:
            PublishError: RabbitMQ refused the address (its node is not in the cluster).
            BrokerUnreachable: the check connection could not be opened.
        """
        node = direct_reply_to_node(routing_key)
        refused = PublishError(
            f"RabbitMQ refused the direct reply-to address {routing_key[:80]!r}: it names "
            "no node of this cluster (the reply is dropped; its caller, if any, times out)",
            routing_key=routing_key,
        )
        if node is None or node in self.bad:
            raise refused
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await self._link.connect()
            assert self._channel is not None
            try:
                await publish_confirmed(
                    self._channel, "", routing_key, body, properties, False, timeout
                )
                await asyncio.sleep(0)  # a close for this publish would come right after
                if self._link.is_closed:
                    raise refused
            except BurrowError:
                self._remember(self.bad, node)
                _log.warning("rpc_reply_node_refused", node=node.decode("ascii", "replace")[:60])
                raise refused from None
            self._remember(self.good, node)

    @staticmethod
    def _remember(nodes: set[bytes], node: bytes) -> None:
        if len(nodes) >= _NODES_KEPT:
            nodes.clear()
        nodes.add(node)

    async def close(self) -> None:
        """Close the check connection; idempotent."""
        await self._link.close()
