"""The lean publish path: a publish's frames marshalled in one piece, its confirm bookkept once.

Part of the AMQP transport. aiormq's ``Channel.basic_publish`` takes the channel lock
(an async context manager), opens an ``asyncio.timeout`` scope and a second context
manager, builds pamqp frame objects and marshals them field by field through pamqp's
generic encoder, then registers a done callback on the confirmation. On the publishing
channel, which only burrowmq publishes on, none of that is needed per message:
:class:`LeanPublisher` marshals the method, content header and body frames straight
into one ``bytes`` (the header's values through pamqp's own encoders, so a field table
is encoded exactly as pamqp encodes it), numbers the publish, registers its confirmation
where aiormq's channel reader resolves it (ack, nack, return, channel close, lost
connection: the same code as for ``basic_publish``), and hands the bytes to the
connection's writer queue, without awaiting anything unless that queue is full.

Publishes made while the writer has not caught up yet (many in flight: ``publish_many``,
concurrent RPC calls, a server's replies) go out together: a publish whose predecessor's
frames still wait, last in the writer queue, is added to them (:class:`_Batch`), so the
writer sends them in one socket write, in the order numbered, instead of one write and
one wake-up of the writer task each. A publish made when the writer is idle is queued
alone and written at once, as before.

One publish at a time (nothing else awaiting its confirm, the writer idle on an empty
queue) goes further: its frames are written to the socket from the publishing task
itself, as the writer task would write them a loop iteration later, and the broker's
ack is settled where the connection's reader task reads it, when the channel's own
reader waits on an empty frame queue (:func:`settle_confirms_inline`), instead of one more
hop through that reader. Both only where nothing can come between: a frame still queued
or taken but not yet written keeps the queue path, and a frame still queued for the
channel (a ``Basic.Return`` among them, which must reach its publish before the ack
does) keeps the channel's. A publish awaiting its confirm then costs the event loop two
wake-ups (the reader's, its own) instead of four.

It relies on attributes of aiormq's ``Channel`` that are public by name but not
documented (``delivery_tag``, ``confirmations``, ``message_id_delivery_tag``,
``write_queue``, ``max_content_size``, ``number``, ``create_future``), on
``aiormq.abc.ChannelFrame`` and on the deque that holds an ``asyncio.Queue``'s items
(without it, publishes are queued one by one). Writing and settling in place also rely
on the deques of waiting getters of the writer queue and of the channel's ``frames``
queue, on ``Channel._confirm_delivery`` (the one place aiormq settles a confirm), and on
finding the connection's ``StreamWriter`` among the locals of its writer task (the only
place aiormq keeps it); where one of them is missing, publishes take the queue path.
:meth:`LeanPublisher.of` returns ``None`` (the caller publishes with ``basic_publish``)
unless the installed aiormq is a version this was checked against (:data:`CHECKED`) and
the channel has them all.
"""

from __future__ import annotations

import asyncio
import collections
import re
import struct
import uuid
from collections.abc import Awaitable
from importlib import metadata
from typing import Any, Final

from aiormq.abc import ChannelFrame
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec
from pamqp import encode

from burrowmq.amqp.wire import CONTENT_HEADER, FRAME_HEAD
from burrowmq.framework.transport import Properties

__all__ = [
    "CHECKED",
    "LeanPublisher",
    "marshal_properties",
    "settle_confirms_inline",
    "supported",
    "version_checked",
]

CHECKED: Final = ((7, 2), (8,))
"""The aiormq versions (from, up to but not including) whose channel internals were read."""

_NEEDS = (
    "delivery_tag",
    "confirmations",
    "message_id_delivery_tag",
    "write_queue",
    "max_content_size",
    "number",
    "create_future",
    "is_closed",
)
_END = b"\xce"
_PUBLISH = b"\x00\x3c\x00\x28\x00\x00"  # class 60 (basic), method 40 (publish), ticket 0
_FLAGS = {False: b"\x00", True: b"\x01"}  # the mandatory bit; immediate is never set
_BATCH_BYTES = 128 * 1024  # a batch this big takes no more: the next publish starts one


def _parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def version_checked(
    package: str, checked: tuple[tuple[int, ...], tuple[int, ...]], version: str | None = None
) -> bool:
    """Whether ``version`` of ``package`` (default: the installed one) is in ``checked``
    (from, up to but not including); ``False`` when it is not installed."""
    if version is None:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            return False
    return checked[0] <= _parse(version) < checked[1]


def supported(version: str | None = None) -> bool:
    """Whether ``version`` of aiormq (default: the installed one) is in :data:`CHECKED`."""
    return version_checked("aiormq", CHECKED, version)


_SUPPORTED: Final = supported()


def marshal_properties(props: Properties, message_id: str) -> bytes:
    """The property flags and values of a content header, as pamqp marshals them.

    A value that is ``None`` (or an empty string, or no headers) is left out, as pamqp
    leaves it out.

    Raises:
        TypeError, ValueError, struct.error: a value AMQP cannot carry (as pamqp raises).
    """
    short = encode.short_string
    flags = 0x0080  # message_id, always set
    parts = []
    if props.content_type:
        flags |= 0x8000
        parts.append(short(props.content_type))
    if props.content_encoding:
        flags |= 0x4000
        parts.append(short(props.content_encoding))
    if props.headers:
        flags |= 0x2000
        parts.append(encode.field_table(props.headers))
    if props.delivery_mode is not None:
        if props.delivery_mode not in (1, 2):
            raise ValueError(f"Invalid delivery_mode value: {props.delivery_mode}")
        flags |= 0x1000
        parts.append(encode.octet(props.delivery_mode))
    if props.priority is not None:
        flags |= 0x0800
        parts.append(encode.octet(props.priority))
    if props.correlation_id:
        flags |= 0x0400
        parts.append(short(props.correlation_id))
    if props.reply_to:
        flags |= 0x0200
        parts.append(short(props.reply_to))
    if props.expiration:
        flags |= 0x0100
        parts.append(short(props.expiration))
    parts.append(short(message_id))
    if props.timestamp is not None:
        flags |= 0x0040
        parts.append(encode.timestamp(props.timestamp))
    if props.type:
        flags |= 0x0020
        parts.append(short(props.type))
    if props.user_id:
        flags |= 0x0010
        parts.append(short(props.user_id))
    if props.app_id:
        flags |= 0x0008
        parts.append(short(props.app_id))
    return struct.pack(">H", flags) + b"".join(parts)


def _short_name(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{what} too long (max 255 bytes)")
    return bytes((len(raw),)) + raw


class _Batch(ChannelFrame):
    """The frames of publishes queued one after another while the writer was busy: one item
    of the writer queue, its payload joined when the writer takes it."""

    should_close = False
    drain_future = None

    def __init__(self, first: bytes) -> None:  # (not the dataclass's: payload is computed)
        object.__setattr__(self, "parts", [first])
        object.__setattr__(self, "size", len(first))

    parts: list[bytes]
    size: int

    @property  # (a field of the frozen parent, computed here)
    def payload(self) -> bytes:
        return b"".join(self.parts)

    def add(self, frames: bytes) -> None:
        """Append one more publish's frames (only while the batch waits in the queue)."""
        self.parts.append(frames)
        object.__setattr__(self, "size", self.size + len(frames))


def _deque(queue: Any, name: str) -> collections.deque[Any] | None:
    """The deque ``name`` (``_queue``: the items, ``_getters``: the waiting getters) of an
    ``asyncio.Queue``, or ``None`` where it keeps them otherwise."""
    found = getattr(queue, name, None)
    return found if isinstance(found, collections.deque) else None


def _waits(getters: collections.deque[Any]) -> bool:
    """Whether the one task that reads a queue waits on it: a getter not yet woken (a
    woken one has left the deque: its item is taken but not yet handled)."""
    return len(getters) == 1 and not getters[0].done()


def _stream_writer(channel: Any) -> asyncio.StreamWriter | None:
    """The ``StreamWriter`` of ``channel``'s connection, which aiormq keeps only in its
    writer task; ``None`` where it cannot be found there."""
    task = getattr(getattr(channel, "connection", None), "_writer_task", None)
    get_coro = getattr(task, "get_coro", None)  # (an asyncio.Task, or aiormq's wrapper of one)
    coroutine = get_coro() if callable(get_coro) else None
    frame = getattr(coroutine, "cr_frame", None)
    writer = frame.f_locals.get("writer") if frame is not None else None
    return writer if isinstance(writer, asyncio.StreamWriter) else None


_CONFIRMS = (spec.Basic.Ack, spec.Basic.Nack)


def settle_confirms_inline(channel: Any) -> bool:
    """Have the broker's acks and nacks for ``channel`` settled as the connection's reader
    reads them, while the channel's reader waits on an empty queue; ``False`` (nothing
    changed) where the channel lacks what that needs.

    aiormq's connection reader puts every frame of a channel into the channel's
    ``frames`` queue, whose reader task wakes to settle a confirm: one event-loop
    iteration per publish. When that queue is empty and its reader waits on it, every
    frame before the confirm has been handled (a return has settled its publish), so
    settling it at once, with the channel's own ``_confirm_delivery``, is what the reader
    would do next. Anything else (another frame, a confirm for a tag not awaited, which
    the channel's reader logs, a frame with others still queued) is queued as before.
    """
    frames = getattr(channel, "frames", None)
    items, getters = _deque(frames, "_queue"), _deque(frames, "_getters")
    confirm = getattr(channel, "_confirm_delivery", None)
    confirmations = getattr(channel, "confirmations", None)
    if items is None or getters is None or confirm is None or confirmations is None:
        return False
    queued = frames.put  # type: ignore[union-attr]  # (a Queue: its deques were found)
    # What a settled confirm's put returns: a future already done, which an await passes
    # straight through. Anything else gets the queue's own put, not a wrapper around it.
    settled_put: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    settled_put.set_result(None)

    def put(item: tuple[int, Any]) -> Awaitable[None]:
        frame = item[1]
        if type(frame) in _CONFIRMS and not items and _waits(getters):
            tag = frame.delivery_tag
            if not frame.multiple:
                if tag in confirmations:
                    confirm(tag, frame)
                    return settled_put
            else:
                settled = [number for number in confirmations if number <= tag]
                if settled:
                    for number in settled:
                        confirm(number, frame)
                    return settled_put
        return queued(item)  # type: ignore[no-any-return]  # (the Queue's put)

    frames.put = put  # type: ignore[union-attr]
    return True


class LeanPublisher:
    """Publishes on one confirming aiormq channel without ``basic_publish``'s per-call work.

    Every publish on the channel must go through it (the delivery tags it assigns must
    match the order the frames are written in): the transport uses one per publishing
    channel and nothing else publishes there.
    """

    __slots__ = (
        "_batch",
        "_channel",
        "_confirmations",
        "_create_future",
        "_getters",
        "_ids",
        "_lock",
        "_max",
        "_number",
        "_queue",
        "_waiting",
        "_writer",
    )

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._confirmations: dict[int, Any] = channel.confirmations
        self._ids: dict[str, int] = channel.message_id_delivery_tag
        self._queue: asyncio.Queue[Any] = channel.write_queue
        # The frames waiting in the writer queue, if it keeps them in a deque as asyncio's
        # Queue does: a publish is added to the last batch only while it is the last item.
        self._waiting = _deque(self._queue, "_queue")
        # The writer task waiting on the queue, and its socket: a publish written in place
        # while it waits (and nothing is queued) goes out in the order numbered.
        self._getters = _deque(self._queue, "_getters")
        found = self._waiting is not None and self._getters is not None
        self._writer = _stream_writer(channel) if found else None
        self._batch: _Batch | None = None
        self._number: int = channel.number
        # A confirmation is a plain future, not one of the channel's (aiormq's store adds
        # three done callbacks to each, run as three more loop callbacks per publish):
        # when the channel closes, its closing future (one of the store's, rejected with
        # the reason) rejects the confirmations still pending with the same reason.
        closing = getattr(channel, "_closing", None)
        if isinstance(closing, asyncio.Future) and not closing.done():
            closing.add_done_callback(self._reject_pending)
            self._create_future = closing.get_loop().create_future
        else:
            self._create_future = channel.create_future
        self._max: int = channel.max_content_size
        # Held only while a publish waits for room in a full write queue, so that no
        # publish numbered after it is written before it.
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, channel: Any) -> LeanPublisher | None:
        """A lean publisher for ``channel``, or ``None`` where aiormq is not one checked."""
        if not _SUPPORTED or not getattr(channel, "publisher_confirms", False):
            return None
        if not all(hasattr(channel, name) for name in _NEEDS):
            return None
        settle_confirms_inline(channel)
        return cls(channel)

    @property
    def channel(self) -> Any:
        """The aiormq channel published on."""
        return self._channel

    def frames(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        mandatory: bool,
        message_id: str,
    ) -> bytes:
        """The method, content header and body frames of one publish, in one piece."""
        number = self._number
        method = (
            _PUBLISH
            + _short_name(exchange, "Exchange name")
            + _short_name(routing_key, "Routing key")
            + _FLAGS[bool(mandatory)]
        )
        header = CONTENT_HEADER.pack(60, 0, len(body)) + marshal_properties(properties, message_id)
        parts = [
            FRAME_HEAD.pack(1, number, len(method)),
            method,
            _END,
            FRAME_HEAD.pack(2, number, len(header)),
            header,
            _END,
        ]
        size = self._max
        for start in range(0, len(body), size):
            chunk = body[start : start + size]
            parts += (FRAME_HEAD.pack(3, number, len(chunk)), chunk, _END)
        return b"".join(parts)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        mandatory: bool,
    ) -> Any:
        """Publish and return the broker's confirm (aiormq's errors, as ``basic_publish``).

        Raises:
            ChannelInvalidStateError: the channel is closed.
            aiormq.exceptions.PublishError: returned (mandatory, unroutable).
            aiormq.exceptions.DeliveryError: nacked.
            TypeError, ValueError, struct.error: a value AMQP cannot carry.
        """
        channel = self._channel
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel!r} closed")
        # aiormq gives a message without an id one, to match a return to its publish.
        message_id = properties.message_id or uuid.uuid4().hex
        payload = self.frames(exchange, routing_key, body, properties, mandatory, message_id)
        if self._lock.locked():  # publishes numbered before this one wait for room
            return await self._queued(payload, message_id)
        batch = self._batch
        waiting = self._waiting
        joins = (
            batch is not None
            and waiting  # (not None, not empty)
            and waiting[-1] is batch
            and batch.size + len(payload) <= _BATCH_BYTES
        )
        queue = self._queue
        if not joins and queue.full():
            return await self._queued(payload, message_id)
        # No await from numbering to queueing: the frames go out in the order numbered.
        tag = channel.delivery_tag + 1
        channel.delivery_tag = tag
        confirmation = self._create_future()
        self._confirmations[tag] = confirmation
        ids = self._ids
        ids[message_id] = tag
        writer = self._writer
        if joins:
            batch.add(payload)  # type: ignore[union-attr]  # (joins: not None)
        elif (
            writer is not None
            and len(self._confirmations) == 1  # (this one: nothing else in flight)
            and not waiting
            and _waits(self._getters)  # type: ignore[arg-type]  # (a writer: found)
        ):
            writer.write(payload)  # what the writer task would write next, now
        else:
            batch = self._batch = _Batch(payload)
            queue.put_nowait(batch)
        try:
            return await confirmation
        finally:
            if ids.get(message_id) == tag:
                del ids[message_id]

    def _reject_pending(self, closing: asyncio.Future[Any]) -> None:
        """Reject the confirmations still awaited with the reason the channel closed, as
        aiormq rejects the futures of its store."""
        reason = None if closing.cancelled() else closing.exception()
        if reason is None:
            reason = ChannelInvalidStateError(f"{self._channel!r} closed")
        for confirmation in list(self._confirmations.values()):
            if isinstance(confirmation, asyncio.Future) and not confirmation.done():
                confirmation.set_exception(reason)
                confirmation.exception()  # (retrieved: no "never retrieved" if none awaits)

    async def _queued(self, payload: bytes, message_id: str) -> Any:
        """Publish when the write queue is full: numbered and queued under the lock."""
        channel = self._channel
        ids = self._ids
        async with self._lock:
            if channel.is_closed:
                raise ChannelInvalidStateError(f"{channel!r} closed")
            tag = channel.delivery_tag + 1
            channel.delivery_tag = tag
            confirmation = self._create_future()
            self._confirmations[tag] = confirmation
            ids[message_id] = tag
            try:
                await self._queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:
                # Not queued, so the broker never sees it: give its number back.
                if channel.delivery_tag == tag:
                    channel.delivery_tag = tag - 1
                self._confirmations.pop(tag, None)
                if ids.get(message_id) == tag:
                    del ids[message_id]
                confirmation.cancel()
                raise
        try:
            return await confirmation
        finally:
            if ids.get(message_id) == tag:
                del ids[message_id]
