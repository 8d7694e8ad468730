"""Publisher: bodies to confirmed AMQP messages, one at a time or many with pipelined confirms."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from burrowmq.exceptions import BurrowError, PublishBatchError
from burrowmq.framework.codec import encode
from burrowmq.framework.transport import Properties, Transport

__all__ = ["Publisher"]


_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def _new_id() -> str:
    # A random per-process prefix and a counter: unique like a UUID, ten times cheaper.
    return f"{_ID_PREFIX}-{next(_id_counter)}"


class Publisher:
    """Encodes, stamps and publishes messages on a transport, waiting for confirms.

    Every message gets a ``message_id`` (a new UUID unless given), a ``timestamp``, a
    ``content_type`` from the codec and, unless ``persistent=False``, delivery mode 2.

    Args:
        transport: where to publish.
        app_id: stamped as the ``app_id`` property.
    """

    def __init__(self, transport: Transport, *, app_id: str | None = None) -> None:
        self._transport = transport
        self._app_id = app_id

    def build(
        self,
        body: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        persistent: bool = True,
        message_id: str | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: float | None = None,
        priority: int | None = None,
        content_type: str | None = None,
    ) -> tuple[bytes, Properties]:
        """Encode ``body`` and build its properties.

        Raises:
            DecodeError: the body cannot be encoded (names its type).
        """
        data, default_type = encode(body)
        props = Properties(
            content_type=content_type or default_type,
            headers=dict(headers) if headers else {},
            delivery_mode=2 if persistent else 1,
            message_id=message_id or _new_id(),
            timestamp=datetime.now(UTC),
            correlation_id=correlation_id,
            reply_to=reply_to,
            expiration=None if expiration is None else str(max(0, round(expiration * 1000))),
            priority=priority,
            app_id=self._app_id,
        )
        return data, props

    async def publish(
        self,
        exchange: str,
        body: Any,
        *,
        routing_key: str = "",
        mandatory: bool = False,
        timeout: float | None = None,
        **options: Any,
    ) -> str:
        """Publish one message and wait for its confirm; return its message id.

        ``options`` are those of :meth:`build`.
        """
        data, props = self.build(body, **options)
        await self._transport.publish(
            exchange, routing_key, data, props, mandatory=mandatory, timeout=timeout
        )
        assert props.message_id is not None
        return props.message_id

    async def publish_many(
        self,
        exchange: str,
        bodies: Iterable[Any],
        *,
        routing_key: str = "",
        mandatory: bool = False,
        window: int = 256,
        timeout: float | None = None,
        **options: Any,
    ) -> list[str]:
        """Publish many messages with up to ``window`` confirms outstanding at once.

        Every message is attempted; the call returns when all are confirmed or failed.

        Returns:
            The message ids, in the order of ``bodies``.

        Raises:
            PublishBatchError: some were not confirmed; ``failures`` lists them by index
                and ``confirmed`` counts the others.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        built = [self.build(body, **options) for body in bodies]
        failures: list[tuple[int, BurrowError]] = []
        source: Iterator[tuple[int, tuple[bytes, Properties]]] = iter(enumerate(built))
        publish = self._transport.publish

        # A fixed set of senders pulls from one iterator: `window` confirms in flight,
        # and no task per message.
        async def sender() -> None:
            for index, (data, props) in source:
                try:
                    await publish(
                        exchange, routing_key, data, props, mandatory=mandatory, timeout=timeout
                    )
                except BurrowError as exc:
                    failures.append((index, exc))

        senders = min(window, len(built))
        if senders:
            await asyncio.gather(*(sender() for _ in range(senders)))
        if failures:
            failures.sort(key=lambda item: item[0])
            first = failures[0][1]
            raise PublishBatchError(
                f"{len(failures)} of {len(built)} messages were not confirmed; the first "
                f"(#{failures[0][0]}): {first}",
                failures=failures,
                confirmed=len(built) - len(failures),
                exchange=exchange,
                routing_key=routing_key,
            )
        return [props.message_id or "" for _, props in built]
