"""A consumer group on a super stream: each partition read by one instance, spread out.

``router.stream("orders", consumer="billing", partitions=6)`` reads the partitions
``orders-0`` .. ``orders-5``. Every partition has its own mark
(``orders-<i>.billing.offset``) and its own lease (``orders-<i>.billing.lease``, see
:mod:`burrowmq.routing.leased`), and every instance stands in line for every lease, so
each partition is read by exactly one instance at a time and no coordinator is needed:

- **Group size.** The number of instances ``n`` is the consumer count of the group's
  membership queue ``<stream>.<consumer>.members``, which every instance consumes and
  nobody publishes to (a lease queue would not do: RabbitMQ counts only the active
  consumer of a single-active-consumer queue). Each instance may read at most
  ``ceil(N / n)`` partitions.
- **Rebalance.** Every :data:`BALANCE_EVERY` seconds an instance holding more leases than
  that releases the surplus: it stops reading that partition (running handlers finish,
  the mark is stored), lets the lease go, and stands in line for it again at the back.
  The broker hands the lease to the next instance in line, which resumes after the mark.
  So a partition changes hands only once what was read from it is settled: per-key
  order holds (a key's messages are in one partition, read in order).
- **An instance joins**: the others are over the new limit and release partitions
  until it has its share (a released partition may pass through another full
  instance first, which releases it again within a round).
- **An instance dies**: its leases pass at once to the next instances in line, which
  resume after each partition's mark (repeats as for one reader: what it settled after
  its last commit plus the prefetch); the group is smaller, so the limit rises.
"""

from __future__ import annotations

import asyncio
import contextlib
import math

from burrowmq.exceptions import BurrowError
from burrowmq.framework.log import get_logger
from burrowmq.framework.transport import Delivery, Subscription, Transport
from burrowmq.routing.leased import LeasedConsumer

__all__ = ["BALANCE_EVERY", "ConsumerGroup"]

_log = get_logger()
BALANCE_EVERY = 1.0
"""Seconds between an instance's checks of its share of the partitions."""


class ConsumerGroup:
    """This instance's part in a consumer group: one :class:`LeasedConsumer` per partition.

    Args:
        partitions: the partitions' consumers, in partition order.
        transport: asked for the group's size.
        members: the group's membership queue.
        queue: the super stream (for health and logs).
        name: the handler's name.
        drain: seconds a released partition's handlers get to finish.
    """

    def __init__(
        self,
        partitions: list[LeasedConsumer],
        transport: Transport,
        *,
        members: str,
        queue: str,
        name: str,
        drain: float,
    ) -> None:
        self.queue = queue
        self.name = name
        self.partitions = partitions
        self._transport = transport
        self.members = members
        self._membership: Subscription | None = None
        self._drain = drain
        self._task: asyncio.Task[None] | None = None
        self.released = 0
        """Partitions this instance released to rebalance."""

    @property
    def consuming(self) -> bool:
        """Whether it is a member and every partition's consumer is in line (and
        reading, where it leads)."""
        membership = self._membership
        member = membership is not None and membership.consuming
        return member and all(part.consuming for part in self.partitions)

    @property
    def in_flight(self) -> int:
        """Deliveries being handled now, over all partitions."""
        return sum(part.in_flight for part in self.partitions)

    @property
    def last_delivery(self) -> float | None:
        """When the last delivery came, from any partition."""
        times = [t for part in self.partitions if (t := part.last_delivery) is not None]
        return max(times) if times else None

    @property
    def reading(self) -> list[int]:
        """The partitions this instance reads now."""
        return [i for i, part in enumerate(self.partitions) if part.reading]

    async def start(self) -> None:
        """Join the group, stand in line for every partition; start balancing."""
        self._membership = await self._transport.consume(self.members, _ignore, prefetch=1)
        for part in self.partitions:
            await part.start()
        self._task = asyncio.get_running_loop().create_task(
            self._balance_loop(), name=f"burrowmq-group:{self.name}"
        )

    async def stop(self, timeout: float) -> None:
        """Leave the group, stop every partition (marks stored, leases let go)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        membership, self._membership = self._membership, None
        if membership is not None:  # first: the others' share grows before they inherit
            with contextlib.suppress(BurrowError):
                await membership.close()
        await asyncio.gather(*(part.stop(timeout) for part in self.partitions))

    def abandon(self) -> int:
        """Cancel the running handlers of every partition now."""
        return sum(part.abandon() for part in self.partitions)

    async def _balance_loop(self) -> None:
        while True:
            await asyncio.sleep(BALANCE_EVERY)
            try:
                await self.balance()
            except BurrowError as error:  # the broker is away: the next round tries again
                _log.warning("group_balance_failed", queue=self.queue, error=str(error))
            except Exception as exc:  # a bug must not end the balancing silently
                _log.error("group_balance_failed", queue=self.queue, error=str(exc))

    async def balance(self) -> None:
        """Release the leases held beyond this instance's share, ``ceil(N / n)``."""
        members = await self._transport.consumer_count(self.members)
        limit = math.ceil(len(self.partitions) / max(members or 1, 1))
        held = [part for part in self.partitions if part.lease.holder]
        for part in held[limit:]:
            _log.info("partition_released", queue=part.queue, members=members, share=limit)
            self.released += 1
            await part.stop(self._drain)  # handlers finish, the mark is stored, then let go
            await part.start()  # back in line, at its end


def _ignore(delivery: Delivery) -> None:
    """The membership queue carries no messages; one published there is left unacked."""
