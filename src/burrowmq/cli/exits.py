"""The exit statuses of every ``burrowmq`` command: 0 done, 1 failed, 2 misused."""

from __future__ import annotations

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
