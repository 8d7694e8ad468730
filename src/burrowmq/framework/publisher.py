"""Publisher: bodies to confirmed AMQP messages, one at a time or many with pipelined confirms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any

from burrowmq.exceptions import (
    BurrowError,
    ConfigurationError,
    PublishBatchError,
    PublishNacked,
    Unroutable,
)
from burrowmq.framework.builder import MessageBuilder, Outgoing
from burrowmq.framework.instrument import Hooks
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Properties, Transport

__all__ = ["Publisher"]

_log = get_logger()

DROP_WARNING_EVERY = 60.0
"""Seconds between two ``message_unroutable`` warnings for one exchange and routing key."""


class Publisher:
    """Publishes messages built by a :class:`MessageBuilder`, waiting for confirms.

    Every message goes out ``mandatory``, so the broker returns one no queue is bound
    for: with ``mandatory=True`` that is :class:`~burrowmq.Unroutable`; without it the
    message is dropped as AMQP drops it, but a ``message_unroutable`` warning says so
    (once a minute per exchange and routing key, with the count), instead of silence.

    Args:
        transport: where to publish.
        builder: builds and stamps each message (``message_id``, ``timestamp``,
            ``content_type``, ``app_id``, delivery mode).
        hooks: the App's instruments (``None``: none, and no work is done for them).
    """

    def __init__(
        self, transport: Transport, builder: MessageBuilder, *, hooks: Hooks | None = None
    ) -> None:
        self._transport = transport
        self._builder = builder
        self._hooks = hooks
        self._send = transport.publish if hooks is None else self._observed
        self._dropped: dict[tuple[str, str], list[float]] = {}  # key -> [last warned, count]

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

        ``options`` are those of :meth:`MessageBuilder.message`.
        """
        data, props = self._builder.message(body, **options)
        try:
            await self._send(exchange, routing_key, data, props, mandatory=True, timeout=timeout)
        except Unroutable:
            if mandatory:
                raise
            self._dropped_unroutable(exchange, routing_key)
        return props.message_id or ""

    def _dropped_unroutable(self, exchange: str, routing_key: str) -> None:
        """A message published without ``mandatory`` went to no queue: warn, rate-limited."""
        now = time.monotonic()
        seen = self._dropped.get((exchange, routing_key))
        if seen is None:
            if len(self._dropped) >= 1024:  # bounded, whatever routing keys are used
                self._dropped.clear()
            self._dropped[(exchange, routing_key)] = [now, 0]
            count = 1
        else:
            seen[1] += 1
            if now - seen[0] < DROP_WARNING_EVERY:
                return
            count, seen[0], seen[1] = int(seen[1]), now, 0
        _log.warning(
            "message_unroutable",
            exchange=exchange or "(default)",
            routing_key=routing_key,
            dropped=count,
            hint="no queue is bound for it, so the broker dropped it; publish with "
            "mandatory=True to get Unroutable instead",
        )

    async def _observed(
        self,
        exchange: str,
        routing_key: str,
        data: bytes,
        props: Properties,
        *,
        mandatory: bool,
        timeout: float | None,
    ) -> None:
        """One publish under the instruments: traced if they trace, its outcome counted."""
        hooks = self._hooks
        assert hooks is not None
        started = time.perf_counter()
        outcome = "lost"
        try:
            if hooks.traces:
                with hooks.tracing_publish(exchange, routing_key, props):
                    await self._transport.publish(
                        exchange, routing_key, data, props, mandatory=mandatory, timeout=timeout
                    )
            else:
                await self._transport.publish(
                    exchange, routing_key, data, props, mandatory=mandatory, timeout=timeout
                )
            outcome = "confirmed"
        except Unroutable:
            outcome = "unroutable"
            raise
        except PublishNacked:
            outcome = "nacked"
            raise
        finally:
            hooks.published(exchange, outcome, time.perf_counter() - started)

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
            ConfigurationError: ``window`` is not a positive int.
            PublishBatchError: some were not confirmed; ``failures`` lists them by index
                and ``confirmed`` counts the others.
        """
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(
                f"publish_many(window=...) must be a positive int, got {window!r}"
            )
        message = self._builder.message
        built = [message(body, **options) for body in bodies]
        failures: list[tuple[int, BurrowError]] = []
        source: Iterator[tuple[int, Outgoing]] = iter(enumerate(built))
        publish = self._send

        # A fixed set of senders pulls from one iterator: `window` confirms in flight,
        # and no task per message.
        async def sender() -> None:
            for index, (data, props) in source:
                try:
                    await publish(
                        exchange, routing_key, data, props, mandatory=True, timeout=timeout
                    )
                except Unroutable as exc:
                    if mandatory:
                        failures.append((index, exc))
                    else:
                        self._dropped_unroutable(exchange, routing_key)
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
