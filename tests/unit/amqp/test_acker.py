"""Acker: coalesced acks in tag order, stragglers acked alone, nacks never covered."""

from __future__ import annotations

import asyncio

import pytest

from burrowmq.amqp.acker import Acker

pytestmark = pytest.mark.unit


class Wire:
    """Records the frames an acker writes, as ('ack', tag, multiple) / ('nack', tag, requeue)."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bool]] = []
        self.drained: list[bool] = []
        self.broken = False

    async def ack(self, tag: int, multiple: bool, drain: bool = False) -> None:
        if self.broken:
            raise ConnectionError("channel closed")
        self.frames.append(("ack", tag, multiple))
        self.drained.append(drain)

    async def nack(self, tag: int, requeue: bool, drain: bool = False) -> None:
        if self.broken:
            raise ConnectionError("channel closed")
        self.frames.append(("nack", tag, requeue))
        self.drained.append(drain)

    def settled(self) -> set[int]:
        """Tags settled by the frames, applying multiple-acks the way the broker does."""
        out: set[int] = set()
        outstanding = set(range(1, 1000))
        for kind, tag, flag in self.frames:
            if kind == "ack" and flag:
                covered = {t for t in outstanding if t <= tag}
                assert tag in outstanding, f"multiple-ack of a settled tag {tag}"
                out |= covered
                outstanding -= covered
            else:
                assert tag in outstanding, f"{kind} of a settled tag {tag}"
                out.add(tag)
                outstanding.discard(tag)
        return out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class TestAcker:
    async def test_in_order_acks_become_one_multiple_ack(self) -> None:
        """Acks of tags 1..50 handled in one pass go out as a single multiple-ack."""
        wire = Wire()
        acker = Acker(wire.ack, wire.nack)
        for tag in range(1, 51):
            assert acker.ack(tag)
        await settle()
        assert wire.frames == [("ack", 50, True)]
        await acker.close()

    async def test_gap_acks_stragglers_alone_then_resumes(self) -> None:
        """With tag 3 still running, 1-2 go as a multiple-ack and 4-5 singly; later 3 closes the gap."""
        wire = Wire()
        acker = Acker(wire.ack, wire.nack)
        for tag in (1, 2, 4, 5):
            acker.ack(tag)
        await settle()
        assert wire.frames == [("ack", 2, True), ("ack", 4, False), ("ack", 5, False)]
        acker.ack(3)
        acker.ack(6)
        await settle()
        assert wire.frames[3:] == [("ack", 6, True)]
        assert wire.settled() == {1, 2, 3, 4, 5, 6}
        await acker.close()

    async def test_nack_is_never_covered_by_a_multiple_ack(self) -> None:
        """A nacked tag goes out before any multiple-ack that spans it, and is not acked."""
        wire = Wire()
        acker = Acker(wire.ack, wire.nack)
        acker.ack(1)
        acker.nack(2, requeue=True)
        acker.ack(3)
        await settle()
        assert wire.frames[0] == ("nack", 2, True)
        acks = {t for kind, t, _ in wire.frames if kind == "ack"}
        assert 2 not in acks
        assert wire.settled() == {1, 2, 3}
        await acker.close()

    async def test_random_completion_order_settles_each_tag_once(self) -> None:
        """Whatever order 200 handlers finish in, every tag is settled exactly once."""
        import random

        rng = random.Random(7)
        wire = Wire()
        acker = Acker(wire.ack, wire.nack)
        tags = list(range(1, 201))
        rng.shuffle(tags)
        for i, tag in enumerate(tags):
            if tag % 17 == 0:
                acker.nack(tag, requeue=False)
            else:
                acker.ack(tag)
            if i % 13 == 0:
                await settle()
        await acker.close()
        assert wire.settled() == set(range(1, 201))
        assert len(wire.frames) < 200

    async def test_close_flushes_and_refuses_later_acks(self) -> None:
        """close() sends what is pending; acks after it return False and send nothing."""
        wire = Wire()
        acker = Acker(wire.ack, wire.nack)
        acker.ack(1)
        await acker.close()
        assert wire.settled() == {1}
        assert acker.ack(2) is False
        await settle()
        assert wire.settled() == {1}

    async def test_broken_channel_stops_the_writer(self) -> None:
        """When the channel is gone the writer stops quietly; nothing more is sent."""
        wire = Wire()
        wire.broken = True
        acker = Acker(wire.ack, wire.nack, name="q")
        acker.ack(1)
        await settle()
        assert wire.frames == []
        assert acker.ack(2) is False
        await acker.close()


class TestAbandon:
    async def test_abandon_drops_pending_and_refuses(self) -> None:
        """After abandon() (the channel is gone) nothing pending is sent and acks are refused."""
        wire = Wire()
        acker = Acker(wire.ack, wire.nack, batch=100, delay=10.0)
        acker.ack(1)
        acker.abandon()
        await settle()
        assert wire.frames == []
        assert acker.closed
        assert acker.ack(2) is False
        await acker.close()


class TestFlush:
    async def test_flush_sends_pending_now_and_drains_the_last_frame(self) -> None:
        """flush() sends what waits for its batch at once, draining after the last frame."""
        wire = Wire()
        acker = Acker(wire.ack, wire.nack, batch=100, delay=10.0)
        acker.ack(1)
        acker.ack(3)
        await acker.flush()
        assert wire.frames == [("ack", 1, True), ("ack", 3, False)]
        assert wire.drained == [False, True]
        await acker.flush()  # nothing pending: nothing sent
        assert len(wire.frames) == 2
        await acker.close()
