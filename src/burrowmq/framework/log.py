"""Logging: the library's one logger and its per-delivery context.

burrowmq logs through ``structlog.get_logger("burrowmq")`` and never configures
logging; the ``burrowmq`` CLI, being an application, does (:func:`configure`).
Event names are stable snake_case strings.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure", "get_logger"]


def get_logger(**initial: Any) -> Any:
    """Return the ``burrowmq`` structlog logger, bound to ``initial`` values."""
    return structlog.get_logger("burrowmq", **initial)


def configure(level: str = "info", *, json: bool = False, libraries: str | None = None) -> None:
    """Configure structlog for a process run by the CLI (libraries never call this).

    Args:
        level: the lowest level shown (``debug``, ``info``, ``warning``, ``error``).
        json: render JSON lines instead of coloured console lines.
        libraries: the lowest level of aio-pika's and aiormq's own log lines shown on
            stderr; ``None`` (the default) shows none, whatever ``level`` is.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # burrowmq reports connection and channel failures itself, in its own words; the
    # libraries underneath would print them a second time, raw, and at debug level they
    # print every frame. Only an explicit `libraries` level lets their lines through.
    for name in ("aiormq", "aio_pika"):
        library = logging.getLogger(name)
        if (installed := _library_handlers.pop(name, None)) is not None:
            library.removeHandler(installed)
        library.propagate = libraries is None
        if libraries is None:
            library.setLevel(logging.CRITICAL)
            continue
        library.setLevel(logging.getLevelNamesMapping()[libraries.upper()])
        handler = _library_handlers[name] = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        library.addHandler(handler)


_library_handlers: dict[str, logging.Handler] = {}
