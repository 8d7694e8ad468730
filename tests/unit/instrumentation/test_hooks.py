"""Instruments are composed once; each hook reaches only the instruments that override it."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from structlog.testing import capture_logs

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.instrument import Hooks, Instrument, compose_instruments
from burrowmq.framework.transport import Properties

pytestmark = pytest.mark.unit


class Counting(Instrument):
    def __init__(self) -> None:
        self.settled: list[tuple[str, str, str]] = []

    def delivery_settled(self, queue: str, handler: str, outcome: str, seconds: float) -> None:
        self.settled.append((queue, handler, outcome))


class Broken(Instrument):
    def published(self, exchange: str, outcome: str, seconds: float) -> None:
        raise RuntimeError("instrument bug")


class Wrapping(Instrument):
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    @contextlib.contextmanager
    def tracing_publish(self, exchange: str, routing_key: str, properties: Properties) -> Any:
        self.log.append(f"enter {self.name}")
        properties.headers[self.name] = 1
        yield
        self.log.append(f"exit {self.name}")


class TestCompose:
    """compose_instruments."""

    def test_none_without_instruments(self) -> None:
        """No instruments, no Hooks: the hot paths skip them entirely."""
        assert compose_instruments([]) is None

    def test_refuses_what_is_not_an_instrument(self) -> None:
        """Anything but Instrument subclasses is a configuration error naming it."""
        with pytest.raises(ConfigurationError, match="got 'prometheus'"):
            compose_instruments(["prometheus"])  # type: ignore[list-item]

    def test_traces_only_when_an_instrument_traces(self) -> None:
        """Hooks.traces tells whether any instrument wraps publishes or deliveries."""
        hooks = compose_instruments([Counting()])
        assert hooks is not None and not hooks.traces
        traced = compose_instruments([Counting(), Wrapping([], "t")])
        assert traced is not None and traced.traces


class TestHooks:
    """Calling through the composed hooks."""

    def test_reaches_the_instruments_that_listen(self) -> None:
        """A hook reaches every instrument that overrides it, in order."""
        first, second = Counting(), Counting()
        hooks = Hooks([first, Instrument(), second])
        hooks.delivery_settled("q", "h", "acked", 0.1)
        assert first.settled == second.settled == [("q", "h", "acked")]

    def test_a_failing_instrument_fails_nothing(self) -> None:
        """An instrument that raises is logged and ignored; the others still hear."""
        counting = Counting()
        hooks = Hooks([Broken(), counting])
        with capture_logs() as logs:
            hooks.published("ex", "confirmed", 0.01)
            hooks.delivery_settled("q", "h", "acked", 0.0)
        assert [e["event"] for e in logs] == ["instrument_failed"]
        assert counting.settled == [("q", "h", "acked")]

    def test_wrappers_nest_first_outermost(self) -> None:
        """Tracing wrappers nest in list order and may add headers before the publish."""
        log: list[str] = []
        hooks = Hooks([Wrapping(log, "a"), Wrapping(log, "b")])
        properties = Properties()
        with hooks.tracing_publish("ex", "rk", properties):
            log.append("publish")
        assert log == ["enter a", "enter b", "publish", "exit b", "exit a"]
        assert properties.headers == {"a": 1, "b": 1}
