"""Handler outcomes that are not errors.

A handler raises these to steer what happens to its message. They derive from
``Exception`` but sit outside the :class:`burrowmq.BurrowError` tree, so that
``except BurrowError`` never swallows them.
"""

from __future__ import annotations

__all__ = ["Reject"]


class Reject(Exception):
    """Dead-letter the message now, without retries, recording ``reason``.

    Args:
        reason: why the message is refused; carried in the ``x-exception-message``
            header of the dead-lettered copy.
    """

    def __init__(self, reason: str = "rejected by handler") -> None:
        super().__init__(reason)
        self.reason = reason
