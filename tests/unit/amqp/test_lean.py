"""The lean publish path: its frames are pamqp's byte for byte, and its bookkeeping is aiormq's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pamqp.frame
import pytest
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import body as pamqp_body
from pamqp import commands as spec
from pamqp import header

from burrowmq.amqp import lean
from burrowmq.amqp.frames import install
from burrowmq.amqp.lean import LeanPublisher, marshal_properties, supported
from burrowmq.amqp.wire import CONTENT_HEADER, to_pamqp
from burrowmq.framework.transport import Properties

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

install()

STAMP = datetime(2026, 12, 2, 17, 30, 5, tzinfo=UTC)

PROPERTIES = [
    Properties(),
    Properties(message_id="m-1"),
    Properties(
        content_type="application/json",
        content_encoding="gzip",
        headers={
            "x-retry-count": 3,
            "ratio": 0.1,
            "flag": True,
            "nested": {"a": [1, "two", 3.5], "b": None},
            "big": 2**40,
            "name": "Zoë",
        },
        delivery_mode=2,
        priority=0,
        correlation_id="c-9",
        reply_to="amq.rabbitmq.reply-to",
        expiration="1500",
        message_id="m-2",
        timestamp=STAMP,
        type="result",
        user_id="guest",
        app_id="orders",
    ),
    Properties(content_type="", headers={}, delivery_mode=1, priority=9, app_id="é" * 100),
]


def _pamqp_header(props: Properties, message_id: str, size: int) -> bytes:
    converted = to_pamqp(props)
    converted.message_id = message_id
    content = header.ContentHeader(properties=converted, body_size=size)
    return pamqp.frame.marshal(content, 5)[7:-1]  # the payload, without frame head and end


class FakeChannel:
    """What LeanPublisher reads of an aiormq channel, and nothing else."""

    def __init__(self, *, room: int = 0, max_content_size: int = 131_064) -> None:
        self.delivery_tag = 0
        self.confirmations: dict[int, Any] = {}
        self.message_id_delivery_tag: dict[str, int] = {}
        self.write_queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=room)
        self.max_content_size = max_content_size
        self.number = 5
        self.is_closed = False
        self.publisher_confirms = True

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def confirm(self, tag: int) -> None:
        self.confirmations.pop(tag).set_result(spec.Basic.Ack(delivery_tag=tag))


class TestMarshal:
    @pytest.mark.parametrize("props", PROPERTIES)
    def test_properties_are_marshalled_as_pamqp_does(self, props: Properties) -> None:
        """Every property, set or not, is encoded exactly as pamqp encodes it."""
        ours = CONTENT_HEADER.pack(60, 0, 7) + marshal_properties(props, props.message_id or "x")
        assert ours == _pamqp_header(props, props.message_id or "x", 7)

    def test_a_bad_delivery_mode_is_refused_as_pamqp_refuses_it(self) -> None:
        """A delivery mode other than 1 or 2 raises ValueError, as pamqp's validation does."""
        with pytest.raises(ValueError, match="delivery_mode"):
            marshal_properties(Properties(delivery_mode=3), "m")

    def test_an_overlong_string_property_raises(self) -> None:
        """A short string over 255 bytes raises pamqp's TypeError instead of being cut."""
        with pytest.raises(TypeError, match="255"):
            marshal_properties(Properties(correlation_id="x" * 256), "m")

    @pytest.mark.parametrize("size", [0, 1, 10, 11, 35])
    async def test_frames_are_pamqps_and_the_body_is_split_as_aiormq_splits_it(
        self, size: int
    ) -> None:
        """Method, header and body frames match pamqp's, bodies cut at max_content_size."""
        publisher = LeanPublisher(FakeChannel(max_content_size=11))
        body = bytes(range(size))
        props = PROPERTIES[2]
        ours = publisher.frames("ex.orders", "rk.é", body, props, True, "m-2")
        expected = pamqp.frame.marshal(
            spec.Basic.Publish(exchange="ex.orders", routing_key="rk.é", mandatory=True), 5
        )
        converted = to_pamqp(props)
        expected += pamqp.frame.marshal(header.ContentHeader(0, size, converted), 5)
        for start in range(0, size, 11):
            expected += pamqp.frame.marshal(pamqp_body.ContentBody(body[start : start + 11]), 5)
        assert ours == expected

    async def test_an_overlong_routing_key_raises_value_error(self) -> None:
        """A routing key over 255 bytes raises ValueError naming it, as aiormq does."""
        publisher = LeanPublisher(FakeChannel())
        with pytest.raises(ValueError, match="Routing key too long"):
            publisher.frames("", "k" * 256, b"", Properties(), False, "m")


class TestVersionGuard:
    @pytest.mark.parametrize(
        ("version", "expected"),
        [("7.2.4", True), ("7.9.0", True), ("7.1.9", False), ("6.8.1", False), ("8.0.0", False)],
    )
    def test_only_checked_versions_are_supported(self, version: str, expected: bool) -> None:
        """The lean path is used only on the aiormq versions whose internals were read."""
        assert supported(version) is expected

    async def test_an_unchecked_aiormq_falls_back(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where aiormq is not a checked version, there is no lean publisher (basic_publish)."""
        monkeypatch.setattr(lean, "_SUPPORTED", False)
        assert LeanPublisher.of(FakeChannel()) is None

    async def test_a_channel_missing_an_attribute_falls_back(self) -> None:
        """A channel without one of the attributes relied on gets no lean publisher."""
        channel = FakeChannel()
        del channel.message_id_delivery_tag
        assert LeanPublisher.of(channel) is None

    async def test_a_channel_without_confirms_falls_back(self) -> None:
        """A channel without publisher confirms gets no lean publisher."""
        channel = FakeChannel()
        channel.publisher_confirms = False
        assert LeanPublisher.of(channel) is None


class TestPublish:
    async def test_a_publish_is_numbered_queued_and_returns_its_confirm(self) -> None:
        """The publish takes the next tag, queues its frames and returns the broker's ack."""
        channel = FakeChannel()
        publisher = LeanPublisher.of(channel)
        assert publisher is not None
        task = asyncio.create_task(publisher.publish("", "q", b"hi", Properties(), False))
        frame = await channel.write_queue.get()
        assert frame.payload == publisher.frames("", "q", b"hi", Properties(), False, _id(channel))
        assert channel.delivery_tag == 1
        channel.confirm(1)
        assert isinstance(await task, spec.Basic.Ack)
        assert channel.message_id_delivery_tag == {}

    async def test_a_message_without_an_id_gets_one_for_returns(self) -> None:
        """A message without message_id is given one, mapped to its tag until it is settled."""
        channel = FakeChannel()
        publisher = LeanPublisher(channel)
        task = asyncio.create_task(publisher.publish("", "q", b"", Properties(), True))
        await channel.write_queue.get()
        (message_id,) = channel.message_id_delivery_tag
        assert channel.message_id_delivery_tag[message_id] == 1
        channel.confirmations.pop(1).set_exception(ValueError("returned"))
        with pytest.raises(ValueError, match="returned"):
            await task
        assert channel.message_id_delivery_tag == {}

    async def test_a_closed_channel_raises_before_anything_is_sent(self) -> None:
        """On a closed channel the publish raises ChannelInvalidStateError and queues nothing."""
        channel = FakeChannel()
        channel.is_closed = True
        with pytest.raises(ChannelInvalidStateError):
            await LeanPublisher(channel).publish("", "q", b"", Properties(), False)
        assert channel.write_queue.empty()
        assert channel.delivery_tag == 0

    async def test_a_full_queue_keeps_the_frames_in_tag_order(self) -> None:
        """Publishes waiting for room, and those after them, are written in the order numbered."""
        channel = FakeChannel(room=1)
        publisher = LeanPublisher(channel)
        channel.write_queue.put_nowait("someone else's frame")
        tasks = [
            asyncio.create_task(
                publisher.publish("", "q", b"", Properties(message_id=f"m{n}"), False)
            )
            for n in range(4)
        ]
        await asyncio.sleep(0)
        written = []
        assert await channel.write_queue.get() == "someone else's frame"
        for _ in range(4):
            written.append((await channel.write_queue.get()).payload)
        order = [channel.message_id_delivery_tag[f"m{n}"] for n in range(4)]
        expected = [
            publisher.frames("", "q", b"", Properties(message_id=f"m{n}"), False, f"m{n}")
            for n in sorted(range(4), key=lambda n: order[n])
        ]
        assert written == expected
        for tag in range(1, 5):
            channel.confirm(tag)
        await asyncio.gather(*tasks)

    async def test_a_publish_cancelled_while_waiting_for_room_gives_its_tag_back(self) -> None:
        """A publish cancelled before it was queued leaves no tag, confirmation or id behind."""
        channel = FakeChannel(room=1)
        publisher = LeanPublisher(channel)
        channel.write_queue.put_nowait("full")
        task = asyncio.create_task(
            publisher.publish("", "q", b"", Properties(message_id="m"), False)
        )
        await asyncio.sleep(0)
        assert channel.delivery_tag == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert channel.delivery_tag == 0
        assert channel.confirmations == {}
        assert channel.message_id_delivery_tag == {}


class TestBatches:
    """Publishes made while the writer has not taken the last one's frames go out with them."""

    @staticmethod
    def _start(publisher: LeanPublisher, *ids: str, body: bytes = b"") -> list[asyncio.Task[Any]]:
        return [
            asyncio.create_task(
                publisher.publish("", "q", body, Properties(message_id=message_id), False)
            )
            for message_id in ids
        ]

    @staticmethod
    def _frames(publisher: LeanPublisher, *ids: str, body: bytes = b"") -> bytes:
        return b"".join(
            publisher.frames("", "q", body, Properties(message_id=i), False, i) for i in ids
        )

    async def test_publishes_behind_a_waiting_one_join_it_in_tag_order(self) -> None:
        channel = FakeChannel()
        publisher = LeanPublisher(channel)
        tasks = self._start(publisher, "a", "b", "c")
        await asyncio.sleep(0)
        assert channel.write_queue.qsize() == 1
        assert channel.message_id_delivery_tag == {"a": 1, "b": 2, "c": 3}
        frame = channel.write_queue.get_nowait()
        assert frame.payload == self._frames(publisher, "a", "b", "c")
        assert not frame.should_close and not frame.should_drain
        for tag in (1, 2, 3):
            channel.confirm(tag)
        await asyncio.gather(*tasks)

    async def test_once_the_writer_took_a_batch_the_next_publish_starts_one(self) -> None:
        channel = FakeChannel()
        publisher = LeanPublisher(channel)
        first = self._start(publisher, "a")
        await asyncio.sleep(0)
        taken = channel.write_queue.get_nowait()
        second = self._start(publisher, "b")
        await asyncio.sleep(0)
        assert taken.payload == self._frames(publisher, "a")
        assert channel.write_queue.get_nowait().payload == self._frames(publisher, "b")
        channel.confirm(1)
        channel.confirm(2)
        await asyncio.gather(*first, *second)

    async def test_a_frame_queued_after_the_batch_closes_it(self) -> None:
        channel = FakeChannel()
        publisher = LeanPublisher(channel)
        first = self._start(publisher, "a")
        await asyncio.sleep(0)
        channel.write_queue.put_nowait("another channel's frame")
        second = self._start(publisher, "b")
        await asyncio.sleep(0)
        items = [channel.write_queue.get_nowait() for _ in range(3)]
        assert items[0].payload == self._frames(publisher, "a")
        assert items[1] == "another channel's frame"
        assert items[2].payload == self._frames(publisher, "b")
        channel.confirm(1)
        channel.confirm(2)
        await asyncio.gather(*first, *second)

    async def test_a_full_batch_takes_no_more(self) -> None:
        channel = FakeChannel()
        publisher = LeanPublisher(channel)
        body = b"x" * (lean._BATCH_BYTES // 3)  # two fit in a batch, not three
        tasks = self._start(publisher, "a", "b", "c", body=body)
        await asyncio.sleep(0)
        payloads = [channel.write_queue.get_nowait().payload for _ in range(2)]
        assert channel.write_queue.empty()
        assert payloads[0] == self._frames(publisher, "a", "b", body=body)
        assert payloads[1] == self._frames(publisher, "c", body=body)
        for tag in (1, 2, 3):
            channel.confirm(tag)
        await asyncio.gather(*tasks)

    async def test_a_batch_can_grow_while_the_queue_is_full(self) -> None:
        """Joining a waiting batch needs no room; a new item would, and waits for it."""
        channel = FakeChannel(room=1)
        publisher = LeanPublisher(channel)
        tasks = self._start(publisher, "a", "b")
        await asyncio.sleep(0)
        assert channel.write_queue.full()
        assert channel.write_queue.get_nowait().payload == self._frames(publisher, "a", "b")
        channel.confirm(1)
        channel.confirm(2)
        await asyncio.gather(*tasks)


def _id(channel: FakeChannel) -> str:
    (message_id,) = channel.message_id_delivery_tag
    return message_id


class _Connection:
    """What the direct write reads of an aiormq connection: its writer task, which (as
    aiormq's) holds the ``StreamWriter`` in a local named ``writer`` and takes the write
    queue's frames one at a time."""

    def __init__(self, queue: asyncio.Queue[Any], writer: asyncio.StreamWriter) -> None:
        self.taken: list[Any] = []
        self._writer_task = asyncio.create_task(self._write(queue, writer))

    async def _write(self, queue: asyncio.Queue[Any], writer: asyncio.StreamWriter) -> None:
        while True:
            frame = await queue.get()
            self.taken.append(frame)
            writer.write(frame.payload)


class TestInPlace:
    """One publish at a time is written from the publishing task; a confirm is settled as
    the connection's reader reads it, while the channel's reader waits on an empty queue."""

    @staticmethod
    async def _socket_pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
        import socket

        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        return reader, writer, theirs

    async def test_a_lone_publish_is_written_in_place_and_the_next_ones_batch(self) -> None:
        """Nothing in flight and the writer idle: the frames go straight to the socket;
        publishes behind one in flight take the queue (and batch) as before."""
        _, writer, theirs = await self._socket_pair()
        channel = FakeChannel()
        connection = _Connection(channel.write_queue, writer)
        channel.connection = connection  # type: ignore[attr-defined]
        await asyncio.sleep(0)  # the writer task now waits on the queue
        publisher = LeanPublisher(channel)
        first = asyncio.create_task(
            publisher.publish("", "q", b"1", Properties(message_id="a"), False)
        )
        await asyncio.sleep(0)
        assert connection.taken == []  # not through the queue
        theirs.setblocking(False)
        assert theirs.recv(65536) == publisher.frames("", "q", b"1", Properties(), False, "a")
        rest = [
            asyncio.create_task(publisher.publish("", "q", b"2", Properties(message_id=i), False))
            for i in ("b", "c")
        ]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert [frame.payload for frame in connection.taken] == [
            publisher.frames("", "q", b"2", Properties(), False, "b")
            + publisher.frames("", "q", b"2", Properties(), False, "c")
        ]
        for tag in (1, 2, 3):
            channel.confirm(tag)
        await asyncio.gather(first, *rest)
        connection._writer_task.cancel()
        writer.close()
        theirs.close()

    async def test_without_a_writer_found_publishes_are_queued(self) -> None:
        """A channel whose connection keeps no findable writer publishes through the queue."""
        channel = FakeChannel()
        publisher = LeanPublisher(channel)
        task = asyncio.create_task(publisher.publish("", "q", b"", Properties(), False))
        await asyncio.sleep(0)
        assert channel.write_queue.qsize() == 1
        channel.confirm(1)
        await task


class _ConfirmingChannel(FakeChannel):
    """A channel with aiormq's ``frames`` queue, a reader that settles what reaches it, and
    ``_confirm_delivery`` settling a confirm as aiormq's does."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self.read: list[Any] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            _, frame = await self.frames.get()
            self.read.append(frame)

    def _confirm_delivery(self, tag: int, frame: Any) -> None:
        confirmation = self.confirmations.pop(tag)
        if isinstance(frame, spec.Basic.Ack):
            confirmation.set_result(frame)
        else:
            confirmation.set_exception(RuntimeError(f"nacked {tag}"))

    def awaiting(self, *tags: int) -> dict[int, asyncio.Future[Any]]:
        for tag in tags:
            self.confirmations[tag] = self.create_future()
        return dict(self.confirmations)


class TestSettleInline:
    async def test_a_confirm_is_settled_while_the_reader_waits(self) -> None:
        """With the channel's queue empty and its reader waiting, ack and nack settle at once."""
        channel = _ConfirmingChannel()
        await asyncio.sleep(0)
        assert lean.settle_confirms_inline(channel)
        pending = channel.awaiting(1, 2)
        ack = spec.Basic.Ack(delivery_tag=1)
        await channel.frames.put((0, ack))
        await channel.frames.put((0, spec.Basic.Nack(delivery_tag=2)))
        assert pending[1].result() is ack
        with pytest.raises(RuntimeError, match="nacked 2"):
            pending[2].result()
        assert channel.frames.empty() and channel.read == []
        channel.reader.cancel()

    async def test_a_multiple_ack_settles_every_tag_up_to_it(self) -> None:
        channel = _ConfirmingChannel()
        await asyncio.sleep(0)
        lean.settle_confirms_inline(channel)
        pending = channel.awaiting(1, 2, 3)
        await channel.frames.put((0, spec.Basic.Ack(delivery_tag=2, multiple=True)))
        assert pending[1].done() and pending[2].done() and not pending[3].done()
        assert list(channel.confirmations) == [3]
        channel.reader.cancel()

    async def test_frames_still_queued_keep_the_confirm_behind_them(self) -> None:
        """A return (or any frame) not yet read: the ack is queued after it, in order."""
        channel = _ConfirmingChannel()
        await asyncio.sleep(0)
        lean.settle_confirms_inline(channel)
        pending = channel.awaiting(1)
        returned = spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE")
        ack = spec.Basic.Ack(delivery_tag=1)
        await channel.frames.put((0, returned))
        await channel.frames.put((0, ack))
        assert not pending[1].done()
        await asyncio.sleep(0)
        assert channel.read == [returned, ack]
        channel.reader.cancel()

    async def test_a_reader_that_is_not_waiting_gets_the_confirm_queued(self) -> None:
        """Woken but not yet run (its frame taken, not handled): the ack waits its turn."""
        channel = _ConfirmingChannel()
        await asyncio.sleep(0)
        lean.settle_confirms_inline(channel)
        channel.awaiting(1)
        await channel.frames.put((0, spec.Basic.Deliver()))  # wakes the reader, not run yet
        await channel.frames.put((0, spec.Basic.Ack(delivery_tag=1)))
        assert 1 in channel.confirmations
        await asyncio.sleep(0)
        assert [type(frame) for frame in channel.read] == [spec.Basic.Deliver, spec.Basic.Ack]
        channel.reader.cancel()

    async def test_a_confirm_for_no_awaited_tag_reaches_the_reader(self) -> None:
        """An unexpected confirm is queued, so the channel's reader logs it as aiormq does."""
        channel = _ConfirmingChannel()
        await asyncio.sleep(0)
        lean.settle_confirms_inline(channel)
        unexpected = [spec.Basic.Ack(delivery_tag=7), spec.Basic.Ack(delivery_tag=9, multiple=True)]
        for frame in unexpected:
            await channel.frames.put((0, frame))
        await asyncio.sleep(0)
        assert channel.read == unexpected
        channel.reader.cancel()

    async def test_a_channel_without_the_internals_is_left_alone(self) -> None:
        assert lean.settle_confirms_inline(FakeChannel()) is False


class TestClosing:
    async def test_a_close_rejects_pending_confirmations_with_its_reason(self) -> None:
        """Confirmations are plain futures: the channel's closing future, rejected by aiormq
        with the reason the channel closed, rejects those still awaited with it."""
        channel = FakeChannel()
        channel._closing = asyncio.get_running_loop().create_future()  # type: ignore[attr-defined]
        publisher = LeanPublisher(channel)
        tasks = [
            asyncio.create_task(publisher.publish("", "q", b"", Properties(message_id=i), False))
            for i in ("a", "b")
        ]
        await asyncio.sleep(0)
        channel.confirm(1)
        reason = ConnectionError("the broker went away")
        channel._closing.set_exception(reason)  # type: ignore[attr-defined]
        assert isinstance(await tasks[0], spec.Basic.Ack)
        with pytest.raises(ConnectionError) as caught:
            await tasks[1]
        assert caught.value is reason
        assert channel.message_id_delivery_tag == {}

    async def test_a_publish_cancelled_before_the_close_is_left_cancelled(self) -> None:
        channel = FakeChannel()
        channel._closing = asyncio.get_running_loop().create_future()  # type: ignore[attr-defined]
        publisher = LeanPublisher(channel)
        task = asyncio.create_task(publisher.publish("", "q", b"", Properties(), False))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        channel._closing.set_exception(ConnectionError("gone"))
        await asyncio.sleep(0)
        assert channel.confirmations[1].cancelled()
