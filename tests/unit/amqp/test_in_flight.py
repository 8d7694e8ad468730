"""InFlight: publishes waiting on a lost connection fail at once instead of hanging."""

from __future__ import annotations

import asyncio

import pytest

from burrowmq.amqp.publishing import InFlight
from burrowmq.exceptions import ConnectionLost

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class TestInFlight:
    async def test_fail_all_ends_a_stuck_publish_with_connection_lost(self) -> None:
        """A publish that would wait forever raises ConnectionLost once the connection is lost."""
        in_flight = InFlight()
        never = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(in_flight.run(never, "a message for 'x'"))
        await asyncio.sleep(0)
        in_flight.fail_all()
        with pytest.raises(ConnectionLost, match="a message for 'x'"):
            await task

    async def test_a_confirmed_publish_is_untouched(self) -> None:
        """A publish that completes returns normally, and a later fail_all affects nothing."""
        in_flight = InFlight()
        await in_flight.run(asyncio.sleep(0), "m")
        in_flight.fail_all()

    async def test_other_timeouts_pass_through(self) -> None:
        """A TimeoutError of the publish itself is not mistaken for a lost connection."""

        async def times_out() -> None:
            raise TimeoutError("confirm timeout")

        with pytest.raises(TimeoutError, match="confirm timeout"):
            await InFlight().run(times_out(), "m")
