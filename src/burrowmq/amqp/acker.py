"""Acker: settles the deliveries of one channel, coalescing acks into ``multiple=True``.

Handlers finish in any order. The acker keeps the lowest delivery tag not yet settled
(the watermark); whenever the tags from the watermark up are all handled, one
``basic.ack(tag, multiple=True)`` settles them all. Tags handled beyond a gap (a slow
handler still running) are acked one by one in the same pass, so a straggler never holds
prefetch slots hostage. Nacks go out through the same single writer, before any ack that
could cover them, so a multiple-ack never settles a message that was meant to be nacked.

One writer task per channel: no task, and usually no frame, per message. The writer
sends as soon as ``batch`` handled deliveries wait (a quarter of the prefetch keeps the
broker's window open) or ``delay`` seconds after the first one, whichever comes first;
nacks go out at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

__all__ = ["Acker"]

SendAck = Callable[[int, bool, bool], Awaitable[None]]
"""``send_ack(delivery_tag, multiple, drain)``; with ``drain``, return only once the
frame (and so every frame before it) has been written to the socket."""
SendNack = Callable[[int, bool, bool], Awaitable[None]]
"""``send_nack(delivery_tag, requeue, drain)``."""


class Acker:
    """Coalesces the acks of one channel; tags must start at 1 and increase by 1.

    Args:
        send_ack: writes a ``basic.ack``.
        send_nack: writes a ``basic.nack``.
        name: a name for the writer task (``burrowmq-acker:<queue>``).
        batch: send once this many handled deliveries wait.
        delay: otherwise send this many seconds after the first one.
    """

    def __init__(
        self,
        send_ack: SendAck,
        send_nack: SendNack,
        *,
        name: str = "",
        batch: int = 1,
        delay: float = 0.002,
    ) -> None:
        self._batch = max(1, batch)
        self._delay = delay
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None
        self._send_ack = send_ack
        self._send_nack = send_nack
        self._name = name
        self._watermark = 1  # lowest tag not yet settled
        self._handled: set[int] = set()  # handled, not yet acked
        self._settled: set[int] = set()  # settled out of order (acked or nacked alone)
        self._nacks: list[tuple[int, bool]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether acks are refused now (closed, or the channel is gone)."""
        return self._closed

    def abandon(self) -> None:
        """The channel is gone: drop what is pending (the broker requeued it) and stop."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._handled.clear()
        self._nacks.clear()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()

    def _ensure_writer(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._writer(), name=f"burrowmq-acker:{self._name}"
            )

    def ack(self, tag: int) -> bool:
        """Schedule an ack of ``tag``; ``False`` once the acker is closed."""
        if self._closed:
            return False
        self._handled.add(tag)
        self._waiting += 1
        if self._task is None:
            self._ensure_writer()
        if self._waiting >= self._batch:
            self._wake.set()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._wake.set)
        return True

    def nack(self, tag: int, *, requeue: bool) -> bool:
        """Schedule a nack of ``tag``; ``False`` once the acker is closed."""
        if self._closed:
            return False
        self._nacks.append((tag, requeue))
        self._ensure_writer()
        self._wake.set()
        return True

    def _plan(self) -> tuple[list[tuple[int, bool]], int | None, list[int]]:
        """What to send now: nacks, the multiple-ack top, then single acks."""
        self._waiting = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        nacks, self._nacks = self._nacks, []
        settled = self._settled
        for tag, _ in nacks:
            settled.add(tag)
        handled = self._handled
        tag = self._watermark
        top = None
        while True:
            if tag in handled:
                handled.discard(tag)
                top = tag
            elif tag in settled:
                settled.discard(tag)
            else:
                break
            tag += 1
        self._watermark = tag
        singles = sorted(handled)
        handled.clear()
        settled.update(singles)
        return nacks, top, singles

    async def _send(self, *, drain: bool = False) -> None:
        async with self._lock:  # one plan on the wire at a time, in tag order
            nacks, top, singles = self._plan()
            frames = [(self._send_nack, tag, requeue) for tag, requeue in nacks]
            if top is not None:
                frames.append((self._send_ack, top, True))
            frames.extend((self._send_ack, tag, False) for tag in singles)
            last = len(frames) - 1
            for index, (send, tag, flag) in enumerate(frames):
                await send(tag, flag, drain and index == last)

    async def flush(self) -> None:
        """Send every pending ack and nack now and wait until they reached the socket.

        Called before a risky handler runs (one whose message was redelivered, so it may
        crash the process again): the acks of messages that finished before it must not
        die with it, or those innocent messages come back too and share its fate.
        """
        if self._closed or not (self._handled or self._nacks):
            return
        with contextlib.suppress(Exception):
            await self._send(drain=True)

    async def _writer(self) -> None:
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            try:
                await self._send()
            except Exception:
                # The channel is gone: the broker requeues whatever was not settled.
                self._closed = True
                return
            if self._closed:
                with contextlib.suppress(Exception):
                    await self._send()  # what was handled while the last pass ran
                return

    async def close(self) -> None:
        """Send what is pending, then stop the writer; later acks return ``False``."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is None or task.done():
            return
        self._wake.set()  # one last pass, then the writer returns
        with contextlib.suppress(Exception):
            await task
