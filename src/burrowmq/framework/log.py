"""Logging: the library's one logger and its per-delivery context.

burrowmq logs through ``structlog.get_logger("burrowmq")`` once the application has
configured structlog, and never configures logging itself; the ``burrowmq`` CLI, being
an application, does (:func:`configure`). Until structlog is configured, the same events
go to the standard library's ``burrowmq`` logger instead of structlog's default (which
prints every level to stdout): a script or a test run that configured nothing sees only
warnings and errors, on stderr (logging's last resort), and
``logging.basicConfig(level=logging.DEBUG)`` shows everything. Event names are stable
snake_case strings.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure", "get_logger"]


def get_logger(**initial: Any) -> Any:
    """Return the ``burrowmq`` logger, bound to ``initial`` values.

    It logs through structlog when the application configured structlog, else through
    the standard library's ``burrowmq`` logger (see the module's docstring); the choice
    is made at each call, so configuring logging after importing burrowmq works.
    """
    return _Logger(initial)


class _Logger:
    """structlog's logger if structlog is configured, else one onto stdlib logging."""

    __slots__ = ("_stdlib", "_structlog")

    def __init__(self, initial: dict[str, Any]) -> None:
        self._structlog = structlog.get_logger("burrowmq", **initial)
        self._stdlib = structlog.wrap_logger(
            logging.getLogger("burrowmq"),
            processors=[
                structlog.stdlib.filter_by_level,  # first: below the level costs nothing more
                structlog.contextvars.merge_contextvars,
                _to_stdlib,
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
            **initial,
        )

    def __getattr__(self, name: str) -> Any:
        target = self._structlog if structlog.is_configured() else self._stdlib
        return getattr(target, name)


def _to_stdlib(
    logger: Any, method: str, event: structlog.typing.EventDict
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Render ``event key=value ...`` as the record's message; stdlib renders exc_info."""
    exc_info = event.pop("exc_info", None)
    text = str(event.pop("event", ""))
    pairs = " ".join(f"{key}={value!r}" for key, value in event.items())
    return ((f"{text} {pairs}" if pairs else text,), {"exc_info": exc_info})


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
