"""Each exchange type routes exactly the messages it should, on the real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from burrowmq import Message, Router

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class Recorder:
    """Collects what each handler saw; fences tell when a queue has been drained."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = defaultdict(list)
        self.fences: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def handler(self, name: str) -> Any:
        async def handle(body: dict[str, Any], message: Message) -> None:
            if body.get("fence"):
                self.fences[name].set()
            else:
                self.seen[name].append(body["id"])

        handle.__name__ = name
        return handle

    async def fenced(self, app: Any, queues: dict[str, str]) -> None:
        """Send a fence straight to each queue and wait until each handler reached it."""
        for queue in queues.values():
            await app.publish("", {"fence": True}, routing_key=queue)
        await asyncio.wait_for(asyncio.gather(*(self.fences[name].wait() for name in queues)), 30)


class TestTopic:
    async def test_patterns_route_exactly(self, make_app, names) -> None:
        """`*` matches one word, `#` zero or more (also zero), and nothing else arrives."""
        exchange = names.exchange("topic")
        patterns = {
            "placed_any_region": ["order.*.placed"],
            "all_orders": ["order.#"],
            "cancelled": ["#.cancelled"],
            "two_words": ["*.*"],
        }
        expected = {
            "order.eu.placed": {"placed_any_region", "all_orders"},
            "order": {"all_orders"},
            "order.eu.cancelled": {"all_orders", "cancelled"},
            "cancelled": {"cancelled"},
            "order.placed": {"all_orders", "two_words"},
            "x.y.z.cancelled": {"cancelled"},
            "a.b": {"two_words"},
            "order.eu.de.placed": {"all_orders"},
            "orders.eu.placed": set(),
            "": set(),
        }
        recorder = Recorder()
        router = Router(concurrency=1)
        queues = {}
        for name, keys in patterns.items():
            queues[name] = names.queue(name)
            router.topic(exchange, keys, queue=queues[name])(recorder.handler(name))
        app = make_app(router)
        await app.start()
        for key in expected:
            await app.publish(exchange, {"id": key}, routing_key=key)
        await recorder.fenced(app, queues)
        for name in patterns:
            want = sorted(k for k, handlers in expected.items() if name in handlers)
            assert sorted(recorder.seen[name]) == want, name


class TestHeaders:
    async def test_all_and_any(self, make_app, names) -> None:
        """`all` needs every header equal, `any` one; types matter and x- headers are ignored."""
        exchange = names.exchange("headers")
        recorder = Recorder()
        router = Router(concurrency=1)
        queues = {"all": names.queue("all"), "any": names.queue("any")}
        router.headers(exchange, {"format": "pdf", "lang": "en"}, match="all", queue=queues["all"])(
            recorder.handler("all")
        )
        router.headers(exchange, {"urgent": True, "level": 3}, match="any", queue=queues["any"])(
            recorder.handler("any")
        )
        app = make_app(router)
        await app.start()
        cases = {
            "pdf-en": ({"format": "pdf", "lang": "en"}, {"all"}),
            "pdf-en-extra": ({"format": "pdf", "lang": "en", "x-foo": 1, "z": 2}, {"all"}),
            "pdf-only": ({"format": "pdf"}, set()),
            "pdf-de": ({"format": "pdf", "lang": "de"}, set()),
            "urgent": ({"urgent": True}, {"any"}),
            "level3": ({"level": 3}, {"any"}),
            "level-str": ({"level": "3"}, set()),
            "both": ({"format": "pdf", "lang": "en", "urgent": True}, {"all", "any"}),
            "none": ({}, set()),
        }
        for case, (headers, _) in cases.items():
            await app.publish(exchange, {"id": case}, headers=headers)
        await recorder.fenced(app, queues)
        for name in queues:
            want = sorted(c for c, (_, handlers) in cases.items() if name in handlers)
            assert sorted(recorder.seen[name]) == want, name


class TestFanout:
    async def test_every_instance_gets_every_message(self, make_app, names) -> None:
        """Without queue=, two running instances each receive all messages (broadcast)."""
        exchange = names.exchange("fanout")
        got: dict[int, list[int]] = {1: [], 2: []}
        apps = []
        for instance in (1, 2):
            router = Router()

            async def handle(body: dict[str, int], _i: int = instance) -> None:
                got[_i].append(body["n"])

            router.fanout(exchange, dead_letter=False)(handle)
            app = make_app(router)
            await app.start()
            apps.append(app)
        for n in range(50):
            await apps[0].publish(exchange, {"n": n})
        await wait_for(lambda: len(got[1]) >= 50 and len(got[2]) >= 50)
        assert sorted(got[1]) == list(range(50))
        assert sorted(got[2]) == list(range(50))

    async def test_shared_queue_splits_work(self, make_app, names) -> None:
        """With queue=, instances share one queue: each message is handled once in all."""
        exchange = names.exchange("fanout")
        queue = names.queue("shared")
        got: dict[int, list[int]] = {1: [], 2: []}
        for instance in (1, 2):
            router = Router(prefetch=1, concurrency=1)

            async def handle(body: dict[str, int], _i: int = instance) -> None:
                await asyncio.sleep(0.005)
                got[_i].append(body["n"])

            router.fanout(exchange, queue=queue)(handle)
            await make_app(router).start()
        publisher = make_app(Router())
        await publisher.start()
        for n in range(100):
            await publisher.publish(exchange, {"n": n})
        await wait_for(lambda: len(got[1]) + len(got[2]) >= 100)
        assert sorted(got[1] + got[2]) == list(range(100))
        assert got[1] and got[2], "both instances took work"


class TestDirect:
    async def test_two_instances_split_without_loss_or_duplicates(self, make_app, names) -> None:
        """Two instances on one direct queue split the work: nothing lost, nothing twice."""
        exchange = names.exchange("direct")
        queue = names.queue("work")
        got: dict[int, list[int]] = {1: [], 2: []}
        for instance in (1, 2):
            router = Router(prefetch=2, concurrency=2)

            async def handle(body: dict[str, int], _i: int = instance) -> None:
                await asyncio.sleep(0.002)
                got[_i].append(body["n"])

            router.direct(exchange, "work", queue=queue)(handle)
            await make_app(router).start()
        publisher = make_app(Router())
        await publisher.start()
        for n in range(300):
            await publisher.publish(exchange, {"n": n}, routing_key="work")
        await publisher.publish(exchange, {"n": -1}, routing_key="elsewhere")
        await wait_for(lambda: len(got[1]) + len(got[2]) >= 300)
        await asyncio.sleep(0.2)  # would a stray or duplicate delivery show up?
        handled = got[1] + got[2]
        assert sorted(handled) == list(range(300))
        assert got[1] and got[2], "both instances took work"

    async def test_multiple_routing_keys(self, make_app, names) -> None:
        """A direct route with several keys receives each of them and no other key."""
        exchange = names.exchange("direct")
        recorder = Recorder()
        router = Router(concurrency=1)
        queues = {"multi": names.queue("multi")}
        router.direct(exchange, ["a", "b"], queue=queues["multi"])(recorder.handler("multi"))
        app = make_app(router)
        await app.start()
        for key in ("a", "b", "c", "A", "a.b"):
            await app.publish(exchange, {"id": key}, routing_key=key)
        await recorder.fenced(app, queues)
        assert sorted(recorder.seen["multi"]) == ["a", "b"]
