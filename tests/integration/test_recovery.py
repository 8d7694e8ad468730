"""Recovery on the shared broker without breaking it: a consumer the broker cancels comes back."""

from __future__ import annotations

import asyncio

import pytest

from burrowmq import Router

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class TestBrokerCancel:
    async def test_deleted_queue_is_redeclared_and_consumed_again(
        self, make_app, names, amqp
    ) -> None:
        """When its queue is deleted under it, the consumer re-declares it and resumes."""
        exchange = names.exchange()
        queue = names.queue("victim")
        got: list[int] = []
        router = Router()

        @router.direct(exchange, "k", queue=queue)
        async def handle(body: dict[str, int]) -> None:
            got.append(body["n"])

        app = make_app(router)
        await app.start()
        await app.publish(exchange, {"n": 1}, routing_key="k")
        await wait_for(lambda: got == [1])
        await amqp.queue_delete(queue)
        # Until the queue is back, a mandatory publish finds nothing bound.
        for _ in range(200):
            try:
                await app.publish(exchange, {"n": 2}, routing_key="k", mandatory=True)
                break
            except Exception:
                await asyncio.sleep(0.05)
        await wait_for(lambda: got == [1, 2])
