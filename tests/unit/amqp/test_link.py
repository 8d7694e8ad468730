"""Reconnection pauses: exponential, jittered, capped, and not reset by a flapping link."""

from __future__ import annotations

import pytest

from burrowmq.amqp import link
from burrowmq.amqp.link import Backoff

pytestmark = pytest.mark.unit


class TestBackoff:
    """The pauses between reconnection attempts."""

    def test_grows_to_the_cap_with_jitter(self) -> None:
        """After an immediate first attempt, pauses double (plus up to one initial of jitter) up to the cap."""
        backoff = Backoff(initial=0.5, cap=8.0)
        backoff.lost()
        pauses = [backoff.pause() for _ in range(8)]
        assert pauses[0] == 0.0
        for attempt, pause in enumerate(pauses[1:], start=1):
            base = min(8.0, 0.5 * 2 ** (attempt - 1))
            assert base <= pause <= base + 0.5, (attempt, pause)

    def test_a_connection_lost_at_once_keeps_the_pauses_growing(self) -> None:
        """A reconnection that drops again before it was stable does not start over."""
        backoff = Backoff(initial=0.5, cap=30.0, stable=10.0)
        backoff.lost()
        assert backoff.pause() == 0.0
        backoff.connected()
        backoff.lost()  # dropped at once
        assert backoff.pause() >= 0.5
        backoff.connected()
        backoff.lost()
        assert backoff.pause() >= 1.0

    def test_a_stable_connection_resets_the_pauses(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Once a connection stayed up for ``stable`` seconds, the next loss retries at once."""
        now = [100.0]
        monkeypatch.setattr(link.time, "monotonic", lambda: now[0])
        backoff = Backoff(initial=0.5, stable=10.0)
        backoff.lost()
        backoff.pause()
        backoff.pause()
        backoff.connected()
        now[0] += 11
        backoff.lost()
        assert backoff.pause() == 0.0
