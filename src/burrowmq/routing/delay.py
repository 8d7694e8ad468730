"""Delayed delivery: one shared ladder of power-of-two delay queues per virtual host.

Every delay, a delayed publish (``app.publish(..., delay=30)``) or a retry's wait, takes
the same way, exact to the second for any delay up to 2**28 - 1 seconds (8.5 years),
with a fixed set of queues whatever the delays:

- **Levels** ``burrowmq.delay.<k>``, k = 27 .. 0: a topic exchange and a quorum queue of
  that name each. The queue holds its messages ``2**k`` seconds (``x-message-ttl``, a
  queue TTL, so they expire in arrival order) and then dead-letters them, at least once,
  to the exchange of level k - 1 (level 0: to the delivery exchange).
- **The routing key** spells the delay in binary, then the destination queue:
  ``b27.b26. ... .b0.<queue>``, each ``b`` a ``0`` or ``1``. Level k's exchange routes a
  key whose bit k is 1 into its queue, one whose bit k is 0 straight on to level k - 1's
  exchange. Dead-lettering keeps the routing key, so a message waits exactly the sum of
  its set bits. A delayed message enters at the level of its highest set bit.
- **The delivery exchange** ``burrowmq.delay.deliver`` (topic) routes by the tail: a
  queue that receives delayed messages is bound to it with ``*`` x 28 then its name.
  That is the whole way of a retry, which goes back to its work queue: no client on
  the way.
- **The outbox** ``burrowmq.delay.outbox``: the broker can dead-letter only to an
  exchange, keeping the routing key, so a delayed *publish* to an exchange and routing
  key of the caller's cannot end on the broker alone. It targets the outbox, carrying
  its destination in ``x-delay-exchange`` and ``x-delay-routing-key``; every running App
  that uses delays consumes the outbox and publishes each message on to its
  destination, confirmed, before it acks it (:mod:`burrowmq.routing.forwarder`). A
  queue whose name a topic binding cannot spell (a ``*`` or ``#`` word, too long for
  the key) takes that way too.
- **The parking queue** ``burrowmq.delay.outbox.dlq``: an outbox message that cannot be
  forwarded for good (no destination, a destination inside the ladder, an exchange
  that does not exist, no queue bound) is parked there with the reason, confirmed,
  instead of being dropped or returned to the outbox forever.

The ladder is shared: declared by every App that needs it, never per queue, never
expiring. Its queues are quorum queues dead-lettering ``at-least-once``, so a message
waiting in it is as durable as in a quorum work queue (more than in a classic one).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from burrowmq.exceptions import ConfigurationError
from burrowmq.topology.model import Binding, Exchange, Queue, Topology

__all__ = [
    "DELIVER_EXCHANGE",
    "HEADER_DELAY_EXCHANGE",
    "HEADER_DELAY_ROUTING_KEY",
    "LEVELS",
    "MAX_DELAY",
    "OUTBOX",
    "OUTBOX_DLQ",
    "PREFIX",
    "delay_seconds",
    "delivery_binding",
    "entry",
    "ladder_topology",
    "level_name",
    "routable",
]

PREFIX = "burrowmq.delay"
LEVELS = 28
"""Levels 0..27: the longest delay is 2**28 - 1 seconds, about 8.5 years."""
MAX_DELAY = 2**LEVELS - 1
DELIVER_EXCHANGE = f"{PREFIX}.deliver"
OUTBOX = f"{PREFIX}.outbox"
OUTBOX_DLQ = f"{OUTBOX}.dlq"
"""Where outbox messages that cannot be forwarded are parked, with the reason."""
HEADER_DELAY_EXCHANGE = "x-delay-exchange"
HEADER_DELAY_ROUTING_KEY = "x-delay-routing-key"

_ANY_BITS = "*." * LEVELS
_MAX_KEY = 255


def level_name(level: int) -> str:
    """The exchange and queue of ``level`` (its queue holds messages 2**level seconds)."""
    return f"{PREFIX}.{level}"


def delay_seconds(delay: float | timedelta) -> int:
    """A delay as whole seconds, rounded to the nearest.

    Raises:
        ConfigurationError: not a number or timedelta, negative, not finite, or longer
            than :data:`MAX_DELAY` seconds.
    """
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise ConfigurationError(f"delay must be seconds or a timedelta, got {delay!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"delay must be a non-negative finite duration, got {delay!r}")
    rounded = round(seconds)
    if rounded > MAX_DELAY:
        raise ConfigurationError(
            f"delay {delay!r} is longer than the longest, {MAX_DELAY} seconds (8.5 years)"
        )
    return rounded


def routable(queue: str) -> bool:
    """Whether delayed messages can reach ``queue`` by the delivery exchange's binding."""
    words = queue.split(".")
    fits = len((_ANY_BITS + queue).encode("utf-8", "surrogatepass")) <= _MAX_KEY
    return bool(queue) and fits and not any(w in ("*", "#") for w in words)


def entry(seconds: int, queue: str) -> tuple[str, str]:
    """The exchange and routing key that deliver a message to ``queue`` in ``seconds``.

    ``queue`` must be :func:`routable`: the outbox is, for everything else.
    """
    bits = "".join(f"{(seconds >> level) & 1}." for level in range(LEVELS - 1, -1, -1))
    top = seconds.bit_length() - 1
    exchange = level_name(top) if top >= 0 else DELIVER_EXCHANGE
    return exchange, bits + queue


def _bit_pattern(level: int, bit: int) -> str:
    return "*." * (LEVELS - 1 - level) + f"{bit}.#"


def _queue_arguments(level: int) -> dict[str, Any]:
    below = level_name(level - 1) if level else DELIVER_EXCHANGE
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": 2**level * 1000,
        "x-dead-letter-exchange": below,
        # A message is dead-lettered on only once the next level confirmed it: never lost
        # between two levels (at-least-once needs reject-publish overflow).
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def ladder_topology(*, origin: str | None = "delays") -> Topology:
    """The levels, the delivery exchange and the outbox, with their bindings."""
    topology = Topology()
    topology.add(Exchange(name=DELIVER_EXCHANGE, type="topic"), origin=origin)
    for level in range(LEVELS):
        name = level_name(level)
        below = level_name(level - 1) if level else DELIVER_EXCHANGE
        topology.add(Exchange(name=name, type="topic"), origin=origin)
        topology.add(Queue(name=name, arguments=_queue_arguments(level)), origin=origin)
        topology.add(
            Binding(source=name, destination=name, routing_key=_bit_pattern(level, 1)),
            origin=origin,
        )
        topology.add(
            Binding(
                source=name,
                destination=below,
                destination_type="exchange",
                routing_key=_bit_pattern(level, 0),
            ),
            origin=origin,
        )
    topology.add(Queue(name=OUTBOX, arguments={"x-queue-type": "quorum"}), origin=origin)
    topology.add(Queue(name=OUTBOX_DLQ, arguments={"x-queue-type": "quorum"}), origin=origin)
    topology.add(delivery_binding(OUTBOX), origin=origin)
    return topology


def delivery_binding(queue: str) -> Binding:
    """The binding by which delayed messages addressed to ``queue`` reach it."""
    return Binding(source=DELIVER_EXCHANGE, destination=queue, routing_key=_ANY_BITS + queue)
