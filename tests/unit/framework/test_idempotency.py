"""Unit tests for the idempotency middleware and its in-memory store."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from burrowmq import ConfigurationError, Message
from burrowmq.framework.idempotency import Idempotency, MemoryIdempotencyStore, message_key
from burrowmq.framework.middleware import DROPPED

pytestmark = pytest.mark.unit


class TestMemoryStore:
    async def test_remembers_keys(self) -> None:
        """A remembered key is seen; another is not."""
        store = MemoryIdempotencyStore()
        await store.remember("a")
        assert await store.seen("a")
        assert not await store.seen("b")

    async def test_forgets_the_least_recently_used_when_full(self) -> None:
        """Past max_entries the least recently used key goes first; a hit refreshes a key."""
        store = MemoryIdempotencyStore(max_entries=2)
        await store.remember("a")
        await store.remember("b")
        assert await store.seen("a")  # a is now more recent than b
        await store.remember("c")
        assert len(store) == 2
        assert await store.seen("a")
        assert not await store.seen("b")
        assert await store.seen("c")

    @pytest.mark.parametrize("bad", [0, -1, True, 1.5])
    def test_rejects_bad_sizes(self, bad: Any) -> None:
        """max_entries must be a positive int."""
        with pytest.raises(ConfigurationError):
            MemoryIdempotencyStore(max_entries=bad)


class TestIdempotency:
    async def test_drops_a_message_handled_before(self) -> None:
        """The second message with the same id on the same queue is acked without the handler."""
        calls: list[str] = []
        guard = Idempotency()

        async def handler() -> str:
            calls.append("run")
            return "done"

        message = Message(body=b"{}", message_id="m1", queue="q")
        assert await guard(message, handler) == "done"
        with capture_logs() as logs:
            assert await guard(message, handler) is DROPPED
        assert calls == ["run"]
        assert guard.dropped == 1
        assert [entry["event"] for entry in logs] == ["duplicate_dropped"]

    async def test_a_failed_attempt_is_not_remembered(self) -> None:
        """An id is recorded only after the handler succeeded, so a retry runs it again."""
        attempts: list[int] = []
        guard = Idempotency()

        async def flaky() -> None:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("first time fails")

        message = Message(body=b"", message_id="m1", queue="q")
        with pytest.raises(RuntimeError):
            await guard(message, flaky)
        await guard(message, flaky)
        await guard(message, flaky)
        assert len(attempts) == 2

    async def test_same_id_on_two_queues_is_handled_in_each(self) -> None:
        """The key includes the queue: a message fanned out to two queues is not a duplicate."""
        calls: list[str] = []
        guard = Idempotency()

        async def handler() -> None:
            calls.append("run")

        await guard(Message(body=b"", message_id="m1", queue="a"), handler)
        await guard(Message(body=b"", message_id="m1", queue="b"), handler)
        assert calls == ["run", "run"]

    async def test_messages_without_an_id_pass_through(self) -> None:
        """Without a message_id there is nothing to compare: the handler always runs."""
        calls: list[str] = []
        guard = Idempotency()

        async def handler() -> None:
            calls.append("run")

        for _ in range(2):
            await guard(Message(body=b""), handler)
        assert calls == ["run", "run"]
        assert message_key(Message(body=b"")) is None

    async def test_uses_a_custom_store_and_key(self) -> None:
        """Any object with async seen/remember serves as the store; key= picks the key."""

        class Store:
            def __init__(self) -> None:
                self.keys: set[str] = set()

            async def seen(self, key: str) -> bool:
                return key in self.keys

            async def remember(self, key: str) -> None:
                self.keys.add(key)

        store = Store()
        guard = Idempotency(store, key=lambda m: m.headers.get("order"))

        async def handler() -> None:
            return None

        await guard(Message(body=b"", headers={"order": "o-1"}), handler)
        assert store.keys == {"o-1"}
