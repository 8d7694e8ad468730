"""Retry: validation, which exceptions are retried, and the wait before each retry."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import tenacity
from tenacity import wait_exponential, wait_fixed, wait_incrementing, wait_random

from burrowmq.exceptions import ConfigurationError
from burrowmq.routing.retry import DEFAULT_RETRY, DEFAULT_WAIT, NO_RETRY, Retry

pytestmark = pytest.mark.unit


class TestValidation:
    """``Retry`` refuses policies that make no sense."""

    @pytest.mark.parametrize("attempts", [0, -1, -100])
    def test_attempts_below_one(self, attempts: int) -> None:
        """Fewer than one attempt is refused."""
        with pytest.raises(ConfigurationError, match="at least 1"):
            Retry(attempts=attempts)

    @pytest.mark.parametrize("attempts", [True, False, 1.0, 3.5, "3", None])
    def test_attempts_not_an_int(self, attempts: Any) -> None:
        """Attempts must be an int; a bool, float or string is refused."""
        with pytest.raises(ConfigurationError, match="must be an int"):
            Retry(attempts=attempts)

    @pytest.mark.parametrize("wait", [-1, -0.001, -30.0])
    def test_negative_wait(self, wait: float) -> None:
        """A negative wait is refused."""
        with pytest.raises(ConfigurationError, match="must not be negative"):
            Retry(wait=wait)

    @pytest.mark.parametrize(
        "on",
        [int, "ValueError", ValueError(), (ValueError, str), (ValueError, None), [ValueError]],
        ids=repr,
    )
    def test_bad_on(self, on: Any) -> None:
        """``on=`` takes exception types only."""
        with pytest.raises(ConfigurationError, match="exception types"):
            Retry(on=on)

    @pytest.mark.parametrize(
        ("on", "stored"),
        [
            (ValueError, (ValueError,)),
            ((ValueError, KeyError), (ValueError, KeyError)),
            (KeyboardInterrupt, (KeyboardInterrupt,)),
        ],
        ids=repr,
    )
    def test_on_is_a_tuple(self, on: Any, stored: tuple[type[BaseException], ...]) -> None:
        """A single exception type or a tuple of them is kept as a tuple."""
        assert Retry(on=on).on == stored

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"attempts": 1},
            {"attempts": 10, "wait": 0},
            {"wait": 2.5},
            {"wait": wait_exponential(max=30)},
            {"on": (ConnectionError, TimeoutError)},
            {"broker_delay_threshold": 0.0},
        ],
        ids=repr,
    )
    def test_valid(self, kwargs: dict[str, Any]) -> None:
        """Sensible policies are accepted."""
        Retry(**kwargs)

    def test_defaults(self) -> None:
        """A bare Retry is the default policy: three attempts backing off, every Exception, 1 s broker threshold."""
        retry = Retry()
        assert (retry.attempts, retry.wait, retry.on, retry.broker_delay_threshold) == (
            3,
            DEFAULT_WAIT,
            (Exception,),
            1.0,
        )
        assert retry == DEFAULT_RETRY

    def test_attempts_alone_backs_off_like_the_default(self) -> None:
        """``Retry(attempts=5)`` waits as the default policy does (0.1 s, 0.2 s, ... up to 1 s); ``wait=0`` does not wait."""
        assert [Retry(attempts=5).delay(n) for n in range(1, 5)] == pytest.approx(
            [DEFAULT_RETRY.delay(1), DEFAULT_RETRY.delay(2), 0.4, 0.8]
        )
        assert DEFAULT_RETRY.delay(1) == pytest.approx(0.1)
        assert Retry(attempts=9).delay(8) == pytest.approx(1.0)
        assert Retry(attempts=5, wait=0).delay(3) == 0

    def test_is_frozen(self) -> None:
        """A Retry cannot be changed after it is made."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            Retry().attempts = 5  # type: ignore[misc]


class TestRetryable:
    """``retryable`` says whether an exception is worth another attempt."""

    @pytest.mark.parametrize(
        ("on", "exc", "expected"),
        [
            ((Exception,), ValueError("x"), True),
            ((Exception,), RuntimeError("x"), True),
            ((Exception,), asyncio.CancelledError(), False),
            ((Exception,), KeyboardInterrupt(), False),
            ((ValueError,), ValueError("x"), True),
            ((ValueError,), UnicodeDecodeError("utf-8", b"", 0, 1, "x"), True),
            ((ValueError,), KeyError("x"), False),
            ((ValueError, KeyError), KeyError("x"), True),
            ((ConnectionError,), ConnectionResetError(), True),
            ((ConnectionError,), TimeoutError(), False),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else repr(v),
    )
    def test_retryable(
        self, on: tuple[type[BaseException], ...], exc: BaseException, expected: bool
    ) -> None:
        """An exception is retryable when it is an instance of one of ``on``."""
        assert Retry(on=on).retryable(exc) is expected


class TestDelay:
    """``delay(attempt)`` is the wait after failed attempt number ``attempt``."""

    @pytest.mark.parametrize("wait", [0, 0.0, 0.5, 2, 30.0])
    @pytest.mark.parametrize("attempt", [1, 2, 5])
    def test_seconds(self, wait: float, attempt: int) -> None:
        """Plain seconds are the same wait after every attempt."""
        assert Retry(wait=wait).delay(attempt) == float(wait)

    @pytest.mark.parametrize(
        ("strategy", "delays"),
        [
            (wait_exponential(multiplier=1, max=30), [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
            (wait_exponential(multiplier=0.5, max=3), [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]),
            (wait_exponential(multiplier=1, min=3, max=10), [3.0, 3.0, 4.0, 8.0, 10.0, 10.0, 10.0]),
            (wait_fixed(2), [2.0] * 7),
            (wait_fixed(0), [0.0] * 7),
            (wait_incrementing(start=1, increment=2), [1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0]),
            (
                wait_incrementing(start=0, increment=1, max=3),
                [0.0, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0],
            ),
            (wait_fixed(1) + wait_fixed(0.5), [1.5] * 7),
        ],
        ids=[
            "exponential",
            "exponential-half",
            "exponential-min",
            "fixed",
            "fixed-zero",
            "incrementing",
            "incrementing-max",
            "sum",
        ],
    )
    def test_tenacity_strategies(self, strategy: Any, delays: list[float]) -> None:
        """A tenacity wait strategy is asked with the attempt number, 1-based."""
        retry = Retry(attempts=8, wait=strategy)
        assert [retry.delay(attempt) for attempt in range(1, 8)] == pytest.approx(delays)

    def test_random_strategy_stays_in_range(self) -> None:
        """A random wait stays within its bounds."""
        retry = Retry(wait=wait_random(min=1, max=2))
        assert all(1.0 <= retry.delay(attempt) <= 2.0 for attempt in range(1, 20))

    def test_callable_gets_the_attempt_number(self) -> None:
        """Any callable taking tenacity's retry state works as a strategy."""
        seen: list[int] = []

        def strategy(state: tenacity.RetryCallState) -> float:
            seen.append(state.attempt_number)
            return state.attempt_number * 10

        retry = Retry(wait=strategy)
        assert [retry.delay(n) for n in (1, 2, 3)] == [10.0, 20.0, 30.0]
        assert seen == [1, 2, 3]

    def test_negative_strategy_result_is_zero(self) -> None:
        """A strategy that answers a negative wait is treated as no wait."""
        assert Retry(wait=lambda state: -5).delay(1) == 0.0

    def test_delay_is_a_float(self) -> None:
        """The delay is always a float, even from an int wait."""
        assert type(Retry(wait=3).delay(1)) is float


class TestPresets:
    """``DEFAULT_RETRY`` and ``NO_RETRY``."""

    def test_default_retry(self) -> None:
        """The default is three attempts of any Exception, with short in-process waits."""
        assert DEFAULT_RETRY.attempts == 3
        assert DEFAULT_RETRY.on == (Exception,)
        assert DEFAULT_RETRY.broker_delay_threshold == 1.0
        assert DEFAULT_RETRY.delay(1) < DEFAULT_RETRY.delay(2) <= 1.0
        assert DEFAULT_RETRY.delay(2) < DEFAULT_RETRY.broker_delay_threshold

    def test_default_retry_is_capped_at_one_second(self) -> None:
        """However many attempts, the default never waits more than a second."""
        assert DEFAULT_RETRY.delay(50) == 1.0

    def test_default_retry_waits_as_documented(self) -> None:
        """The default waits 0.1 s after the first failure and 0.2 s after the second."""
        assert [DEFAULT_RETRY.delay(1), DEFAULT_RETRY.delay(2)] == pytest.approx([0.1, 0.2])

    def test_no_retry(self) -> None:
        """``NO_RETRY`` is one attempt: a failure is dead-lettered at once."""
        assert NO_RETRY.attempts == 1

    @pytest.mark.parametrize(
        ("retry", "described"),
        [
            (Retry(), {"attempts": 3, "on": ["Exception"]}),
            (
                Retry(attempts=5, on=(ValueError, KeyError)),
                {"attempts": 5, "on": ["ValueError", "KeyError"]},
            ),
        ],
    )
    def test_describe(self, retry: Retry, described: dict[str, Any]) -> None:
        """``describe`` gives the attempts and the names of the retried types."""
        assert retry.describe() == described
