"""Idempotency: a middleware that drops messages already handled, by message id.

RabbitMQ delivers at least once: a consumer that dies after its handler returned but
before the ack reached the broker gets the message again, and a publisher that retries
after a lost confirm may send it twice. :class:`Idempotency` remembers the ids of
messages handled successfully and acks a repeat without calling the handler (a repeated RPC
request is acked and gets no second reply)::

    app = App([router], middleware=[Idempotency(MemoryIdempotencyStore(max_entries=50_000))])

An id is remembered only after the handler succeeded, so a failed attempt is retried
as usual. The key is the queue plus the ``message_id``: the same message routed to two
queues is handled once in each. Messages without a ``message_id`` pass through.

The built-in store lives in the process (bounded, least recently used ids forgotten
first); a store shared between instances (Redis, a database table) implements
:class:`IdempotencyStore`. Two copies handled at the very same moment may both run:
this narrows at-least-once delivery, it does not make it exactly-once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.log import get_logger
from burrowmq.framework.message import Message
from burrowmq.framework.middleware import DROPPED, CallNext

__all__ = ["Idempotency", "IdempotencyStore", "MemoryIdempotencyStore", "message_key"]

_log = get_logger()


class IdempotencyStore(Protocol):
    """Where :class:`Idempotency` remembers the keys of handled messages."""

    async def seen(self, key: str) -> bool:
        """Whether ``key`` was remembered (and not yet forgotten)."""
        ...

    async def remember(self, key: str) -> None:
        """Remember ``key``: a message with it was handled."""
        ...


class MemoryIdempotencyStore:
    """An in-process store of at most ``max_entries`` keys, least recently used dropped.

    Args:
        max_entries: how many keys to keep.

    Raises:
        ConfigurationError: ``max_entries`` is not a positive int.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(
                f"MemoryIdempotencyStore(max_entries=...) must be a positive int, "
                f"got {max_entries!r}"
            )
        self.max_entries = max_entries
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    async def seen(self, key: str) -> bool:
        """Whether ``key`` is kept; a hit makes it the most recently used."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    async def remember(self, key: str) -> None:
        """Keep ``key``, forgetting the least recently used one when full."""
        keys = self._keys
        keys[key] = None
        keys.move_to_end(key)
        if len(keys) > self.max_entries:
            keys.popitem(last=False)


def message_key(message: Message) -> str | None:
    """The default key: ``<queue>:<message_id>``, or ``None`` without a message id."""
    if not message.message_id:
        return None
    return f"{message.queue}:{message.message_id}"


class Idempotency:
    """Middleware: ack a message whose key was already handled, without the handler.

    Args:
        store: where handled keys are kept (default: a new
            :class:`MemoryIdempotencyStore`).
        key: the key of a message, ``None`` to let it through unchecked (default:
            :func:`message_key`, queue and message id).
    """

    def __init__(
        self,
        store: IdempotencyStore | None = None,
        *,
        key: Callable[[Message], str | None] = message_key,
    ) -> None:
        self.store: IdempotencyStore = store if store is not None else MemoryIdempotencyStore()
        self._key = key
        self.dropped = 0

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        """Drop a duplicate, else run the handler and remember the key on success."""
        key = self._key(message)
        if key is None:
            return await call_next()
        if await self.store.seen(key):
            self.dropped += 1
            _log.info("duplicate_dropped", key=key, redelivered=message.redelivered)
            return DROPPED
        result = await call_next()
        await self.store.remember(key)
        return result
