"""A hand-written aio-pika RPC client and server over direct reply-to: the baseline.

Written the way the aio-pika documentation suggests (high-level API, default channel
settings: publisher confirms on, ``mandatory`` publishes), with the same guarantees
burrowmq gives: the server publishes the reply, then acks; the client keeps many calls in
flight keyed by correlation id and times them out.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench._common import Order

REPLY_TO = "amq.rabbitmq.reply-to"


class RawServer:
    """Consumes ``queue``, validates each request as an :class:`Order` and sends it back."""

    def __init__(self, url: str, queue: str, *, prefetch: int = 64) -> None:
        self.url = url
        self.queue_name = queue
        self.prefetch = prefetch
        self.connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(
            self.queue_name, durable=True, arguments={"x-queue-type": "classic"}
        )
        exchange = channel.default_exchange

        async def on_request(message: AbstractIncomingMessage) -> None:
            order = Order.model_validate_json(message.body)
            reply = order.model_dump_json().encode()
            await exchange.publish(
                aio_pika.Message(
                    reply, correlation_id=message.correlation_id, content_type="application/json"
                ),
                routing_key=message.reply_to or "",
                mandatory=False,
            )
            await message.ack()

        await queue.consume(on_request)

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class RawClient:
    """Calls the raw server; many calls in flight over one direct reply-to consumer."""

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue_name = queue
        self.pending: dict[str, asyncio.Future[bytes]] = {}
        self.connection: aio_pika.abc.AbstractConnection | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect(self.url)
        self.channel = await self.connection.channel()
        replies = await self.channel.get_queue(REPLY_TO, ensure=False)
        await replies.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self.pending.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(self, order: Order, timeout: float = 10.0) -> Order:
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        try:
            await self.channel.default_exchange.publish(
                aio_pika.Message(
                    order.model_dump_json().encode(),
                    correlation_id=correlation_id,
                    reply_to=REPLY_TO,
                    content_type="application/json",
                    expiration=timeout,
                ),
                routing_key=self.queue_name,
            )
            return Order.model_validate_json(await asyncio.wait_for(future, timeout))
        finally:
            del self.pending[correlation_id]

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()
