"""Handler outcomes that are not errors.

A handler raises these to steer what happens to its message. They derive from
``Exception`` but sit outside the :class:`burrowmq.BurrowError` tree, so that
``except BurrowError`` never swallows them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["BatchError", "Reject"]


class Reject(Exception):
    """Dead-letter the message now, without retries, recording ``reason``.

    Args:
        reason: why the message is refused; carried in the ``x-exception-message``
            header of the dead-lettered copy.
    """

    def __init__(self, reason: str = "rejected by handler") -> None:
        super().__init__(reason)
        self.reason = reason


class BatchError(Exception):
    """Some messages of a batch failed; the others succeeded and are acked.

    Raised by a batch handler (``batch=Batch(...)``) to fail only the messages at the
    given indexes of the list it received: each is retried or dead-lettered by the
    route's retry policy (a :class:`Reject` among them dead-letters that one at once).

    Args:
        failures: the index of each failed message in the batch, with its exception.
    """

    def __init__(self, failures: Mapping[int, BaseException]) -> None:
        super().__init__(f"{len(failures)} message(s) of the batch failed")
        self.failures = dict(failures)
