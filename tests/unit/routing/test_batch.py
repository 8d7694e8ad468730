"""Batch routes: the Batch value, batch handler inspection and the route's checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from burrowmq import Batch, ConfigurationError, Message, Router
from burrowmq.routing.handler import Handler

pytestmark = pytest.mark.unit


class Event(BaseModel):
    n: int


class TestBatchValue:
    """``Batch(size, wait)`` checks its values."""

    @pytest.mark.parametrize("size", [0, -1, 65536, 1.5, True, "10"])
    def test_bad_size(self, size: Any) -> None:
        """A size outside 1..65535 (or not an int) is refused."""
        with pytest.raises(ConfigurationError, match="size"):
            Batch(size=size)

    @pytest.mark.parametrize("wait", [-0.1, float("inf"), "1", None])
    def test_bad_wait(self, wait: Any) -> None:
        """A negative, infinite or non-number wait is refused."""
        with pytest.raises(ConfigurationError, match="wait"):
            Batch(wait=wait)


class TestBatchHandler:
    """A batch handler takes ``list[T]`` and optionally ``list[Message]``."""

    def test_element_type_and_messages(self) -> None:
        """The payload type is the element type; list[Message] is the metadata."""

        async def h(events: list[Event], messages: list[Message]) -> None: ...

        spec = Handler.inspect(h, batch=True)
        assert spec.payload_type is Event
        assert spec.wants_message and spec.batch

    def test_not_a_list_is_refused(self) -> None:
        """A batch handler whose payload is not a list is a configuration error."""

        async def h(event: Event) -> None: ...

        with pytest.raises(ConfigurationError, match=r"list\[T\]"):
            Handler.inspect(h, batch=True)

    def test_single_message_parameter_is_refused(self) -> None:
        """``Message`` (not a list) in a batch handler is a configuration error."""

        async def h(events: list[Event], message: Message) -> None: ...

        with pytest.raises(ConfigurationError, match=r"list\[Message\]"):
            Handler.inspect(h, batch=True)


class TestBatchRoute:
    """Routes refuse batches where they cannot work."""

    def test_rpc_and_key_parameters_are_refused(self) -> None:
        """Routing-key parameters and a prefetch past 65535 cannot batch."""
        router = Router()

        async def h(events: list[Event], level: str) -> None: ...

        with pytest.raises(ConfigurationError, match="routing-key parameters"):
            router.topic("logs", "logs.{level}", queue="q", batch=Batch())(h)

        async def g(events: list[Event]) -> None: ...

        with pytest.raises(ConfigurationError, match="prefetch"):
            router.consume("q2", batch=Batch(size=1000), concurrency=100)(g)

    def test_decorator_returns_the_function(self) -> None:
        """``batch=`` is accepted by every message decorator, which returns the function."""
        router = Router()

        async def g(events: list[Event]) -> None: ...

        assert router.fanout("ex", batch=Batch(size=10, wait=0.1))(g) is g
        [route] = router.routes
        assert route.batch == Batch(size=10, wait=0.1)
