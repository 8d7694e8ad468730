"""Retry: how often and how patiently a failing handler is retried, driven by tenacity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity

from burrowmq.exceptions import ConfigurationError

__all__ = ["DEFAULT_RETRY", "DEFAULT_WAIT", "NO_RETRY", "Retry"]

WaitStrategy = Callable[[tenacity.RetryCallState], float]


def _fixed(seconds: float) -> WaitStrategy:
    return tenacity.wait_fixed(seconds)


DEFAULT_WAIT: WaitStrategy = tenacity.wait_exponential(multiplier=0.1, max=1.0)
"""The wait of a Retry that gives none: 0.1 s, 0.2 s, 0.4 s, ... up to 1 s."""


@dataclass(frozen=True, slots=True)
class Retry:
    """A retry policy for a route (or, on the App, for every route without one).

    ``Retry(attempts=3)`` means three deliveries to the handler in all; after the last
    failure the message is dead-lettered with the exception's type and message.
    Without ``wait=``, attempts back off as the default policy's do (0.1 s, 0.2 s,
    0.4 s, ... up to 1 s), so ``Retry(attempts=5)`` changes only the number of
    attempts; ``wait=0`` retries at once.

    Args:
        attempts: deliveries to the handler in all (1 means no retry).
        wait: seconds between attempts, or a tenacity wait strategy such as
            ``wait_exponential(multiplier=0.5, max=30)``; default: exponential from
            0.1 s up to 1 s (:data:`DEFAULT_WAIT`).
        on: the exception types worth retrying; any other goes to the dead-letter
            queue at once.
        broker_delay_threshold: waits longer than this many seconds go through the
            broker's delay ladder, to the nearest second (the consumer slot is freed and
            a crash loses nothing); shorter ones sleep in process.

    Raises:
        ConfigurationError: ``attempts`` below 1, or a negative wait.
    """

    attempts: int = 3
    wait: float | WaitStrategy = DEFAULT_WAIT
    on: tuple[type[BaseException], ...] = field(default=(Exception,))
    broker_delay_threshold: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"Retry(attempts=...) must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError(f"Retry(attempts=...) must be at least 1, got {self.attempts}")
        if isinstance(self.wait, int | float) and self.wait < 0:
            raise ConfigurationError(f"Retry(wait=...) must not be negative, got {self.wait}")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        for kind in on:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise ConfigurationError(f"Retry(on=...) takes exception types, got {kind!r}")
        object.__setattr__(self, "on", on)

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt under this policy."""
        return isinstance(exc, self.on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        strategy = _fixed(self.wait) if isinstance(self.wait, int | float) else self.wait
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return max(0.0, float(strategy(state)))

    def broker_waits(self, *, samples: int = 16) -> tuple[float, ...]:
        """The waits of this policy that go through the broker's delay ladder.

        Each attempt's wait is drawn ``samples`` times, so that a random (jittered)
        strategy shows its range; a route with any declares the ladder up front.
        """
        waits = {
            wait
            for attempt in range(1, self.attempts)
            for _ in range(samples if not isinstance(self.wait, int | float) else 1)
            if (wait := self.delay(attempt)) > self.broker_delay_threshold
        }
        return tuple(sorted(waits))

    def describe(self) -> dict[str, Any]:
        """A plain description for logs and exports."""
        return {"attempts": self.attempts, "on": [k.__name__ for k in self.on]}


DEFAULT_RETRY = Retry(attempts=3)
"""Used where neither the route nor the App says: three attempts, 0.1 s then 0.2 s apart."""

NO_RETRY = Retry(attempts=1)
"""One attempt: a failure is dead-lettered at once."""
