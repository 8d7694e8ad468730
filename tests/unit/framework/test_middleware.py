"""Unit tests for middleware composition."""

from __future__ import annotations

from typing import Any

import pytest

from burrowmq import ConfigurationError, Message
from burrowmq.framework.middleware import CallNext, check_middleware, compose

pytestmark = pytest.mark.unit


def _recorder(name: str, log: list[str]) -> Any:
    async def middleware(message: Message, call_next: CallNext) -> Any:
        log.append(f"{name}>")
        result = await call_next()
        log.append(f"<{name}")
        return result

    return middleware


class TestCompose:
    def test_empty_list_composes_to_nothing(self) -> None:
        """No middleware gives no chain, so the consumer skips it entirely."""
        assert compose([]) is None

    async def test_first_middleware_is_outermost(self) -> None:
        """Middleware run in list order around the handler and unwind in reverse."""
        log: list[str] = []
        chain = compose([_recorder("a", log), _recorder("b", log)])
        assert chain is not None

        async def handler() -> str:
            log.append("handler")
            return "result"

        assert await chain(Message(body=b"x"), handler) == "result"
        assert log == ["a>", "b>", "handler", "<b", "<a"]

    async def test_a_middleware_can_skip_the_handler(self) -> None:
        """Returning without call_next short-circuits the rest of the chain."""
        called: list[str] = []

        async def stop(message: Message, call_next: CallNext) -> str:
            return "skipped"

        chain = compose([stop, _recorder("inner", called)])
        assert chain is not None

        async def handler() -> None:
            called.append("handler")

        assert await chain(Message(body=b""), handler) == "skipped"
        assert called == []

    async def test_the_same_chain_serves_many_messages(self) -> None:
        """A chain composed once sees each message it is given."""
        seen: list[bytes] = []

        async def spy(message: Message, call_next: CallNext) -> Any:
            seen.append(message.body)
            return await call_next()

        chain = compose([spy])
        assert chain is not None

        async def handler() -> None:
            return None

        for body in (b"1", b"2", b"3"):
            await chain(Message(body=body), handler)
        assert seen == [b"1", b"2", b"3"]

    async def test_exceptions_propagate_through_the_chain(self) -> None:
        """A handler's exception reaches the consumer through every middleware."""
        chain = compose([_recorder("a", [])])
        assert chain is not None

        async def handler() -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await chain(Message(body=b""), handler)


class TestCheck:
    @pytest.mark.parametrize("bad", ["abc", 3, [1], [None]])
    def test_rejects_what_is_not_a_list_of_callables(self, bad: Any) -> None:
        """A string, a number or a list with a non-callable is a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            check_middleware(bad)

    def test_returns_a_tuple(self) -> None:
        """The list is frozen into a tuple."""

        async def mw(message: Message, call_next: CallNext) -> Any:
            return await call_next()

        assert check_middleware([mw]) == (mw,)
