"""Health: whether an App lives and is ready, and the state of each of its consumers.

``app.health()`` answers it; ``burrowmq run --http`` serves it as ``/healthz`` (live) and
``/readyz`` (ready), the probes Kubernetes asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConsumerHealth", "Health"]


@dataclass(frozen=True, slots=True)
class ConsumerHealth:
    """One consumer of the App.

    Attributes:
        queue: the queue it consumes.
        handler: the handler (``module.function``), or ``rpc:<queue>`` for an RPC server.
        consuming: whether deliveries can come now (not cancelled, its channel open).
        in_flight: deliveries being handled now.
        seconds_since_delivery: since the last delivery came (``None``: none yet).
        recovering: whether its connection is being recovered.
    """

    queue: str
    handler: str
    consuming: bool
    in_flight: int
    seconds_since_delivery: float | None
    recovering: bool

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data, for JSON."""
        return {
            "queue": self.queue,
            "handler": self.handler,
            "consuming": self.consuming,
            "in_flight": self.in_flight,
            "seconds_since_delivery": (
                None
                if self.seconds_since_delivery is None
                else round(self.seconds_since_delivery, 3)
            ),
            "recovering": self.recovering,
        }


@dataclass(frozen=True, slots=True)
class Health:
    """The health of an App.

    Attributes:
        live: the App serves (starting, running or draining): a restart would not help.
        ready: it takes work: running, connected, not shutting down, and every consumer
            consuming.
        state: the App's lifecycle state (``running``, ``stopping``, ...).
        connected: whether its connections to the broker are up.
        consumers: each consumer's state.
        problems: what keeps it from being ready, in words (empty when ready).
    """

    live: bool
    ready: bool
    state: str
    connected: bool
    consumers: tuple[ConsumerHealth, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data, for JSON (what ``/readyz`` answers)."""
        return {
            "live": self.live,
            "ready": self.ready,
            "state": self.state,
            "connected": self.connected,
            "problems": list(self.problems),
            "consumers": [c.as_dict() for c in self.consumers],
        }
