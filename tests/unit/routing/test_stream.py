"""Unit: a stream route's dispatcher resumes after its mark when its consumer restarts."""

from __future__ import annotations

import asyncio

from burrowmq import App, Message, Router
from burrowmq.memory.transport import MemoryTransport


class TestStreamRestart:
    """A reconnection resubscribes after the mark, not at the route's first offset."""

    async def test_reconnect_resumes_after_the_mark(self) -> None:
        """offset="first", 5 handled, a reconnect, 5 more: each offset handled once."""
        transport = MemoryTransport()
        router, seen, changed = Router(), [], asyncio.Event()

        @router.stream("events", offset="first")
        async def project(event: dict[str, int], message: Message) -> None:
            seen.append(message.offset)
            changed.set()

        async def wait(count: int) -> None:
            async with asyncio.timeout(5):
                while len(seen) < count:
                    changed.clear()
                    await changed.wait()

        app = App([router], transport=transport)
        async with app:
            for n in range(5):
                await app.publish("", {"n": n}, routing_key="events")
            await wait(5)
            await transport.reconnect()
            for n in range(5, 10):
                await app.publish("", {"n": n}, routing_key="events")
            await wait(10)
            await asyncio.sleep(0.05)  # nothing more comes
        assert seen == list(range(10))
