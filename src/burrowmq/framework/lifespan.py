"""Lifespan: an App's async context manager, entered once at start and exited once.

``App(lifespan=factory)`` takes, as Starlette does, a factory called with the App that
returns an async context manager (typically a ``contextlib.asynccontextmanager``
function). The App enters it before it connects and consumes, and exits it after the
drain on stop, or at once when the start fails after it was entered. What it yields is
the App's ``lifespan_state``. Failures of the user's code are raised as
:class:`~burrowmq.LifespanError` naming the lifespan, with the original as the cause.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from burrowmq.exceptions import ConfigurationError, LifespanError
from burrowmq.framework.urls import redact

__all__ = ["Lifespan", "LifespanFactory", "check_lifespan"]

LifespanFactory = Callable[[Any], AbstractAsyncContextManager[Any]]
"""Called with the App; returns the async context manager of its lifespan."""


def check_lifespan(factory: object) -> None:
    """Refuse a lifespan that is not callable.

    Raises:
        ConfigurationError: ``factory`` is neither ``None`` nor callable.
    """
    if factory is not None and not callable(factory):
        raise ConfigurationError(
            f"App(lifespan=...) takes a callable returning an async context manager "
            f"(such as an @asynccontextmanager function taking the app), got {factory!r}"
        )


def _name(factory: object) -> str:
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else repr(factory)


class Lifespan:
    """One run of an App's lifespan: entered once, exited at most once.

    Args:
        factory: the App's ``lifespan=``.
        owner: the App, passed to ``factory``.
    """

    __slots__ = ("_exit", "_factory", "_manager", "_owner", "_state", "entered", "name")

    def __init__(self, factory: LifespanFactory, owner: object) -> None:
        self._factory = factory
        self._owner = owner
        self.name = _name(factory)
        self.entered = False
        self._state: Any = None
        self._manager: Any = None
        self._exit: Any = None

    @property
    def state(self) -> Any:
        """What the lifespan yielded (``None`` when it yielded nothing)."""
        return self._state

    async def enter(self) -> Any:
        """Call the factory and enter what it returns; return what it yields.

        Raises:
            ConfigurationError: the factory did not return an async context manager.
            LifespanError: the factory or the entry raised.
        """
        try:
            manager = self._factory(self._owner)
        except Exception as exc:
            raise self._error("failed to start", exc) from exc
        kind = type(manager)
        try:
            enter, exit_ = kind.__aenter__, kind.__aexit__
        except AttributeError:
            raise ConfigurationError(
                f"lifespan {self.name} returned {manager!r}, not an async context manager "
                "(decorate it with contextlib.asynccontextmanager)"
            ) from None
        try:
            self._state = await enter(manager)
        except Exception as exc:
            raise self._error("failed to start", exc) from exc
        self._manager, self._exit, self.entered = manager, exit_, True
        return self._state

    async def exit(self, error: BaseException | None = None) -> None:
        """Exit the lifespan, if it was entered and not exited yet.

        Args:
            error: why the App stops early (a failed start), passed to ``__aexit__``.

        Raises:
            LifespanError: the exit raised.
        """
        exit_, self._exit = self._exit, None
        if exit_ is None:
            return
        self.entered = False
        try:
            if error is None:
                await exit_(self._manager, None, None, None)
            else:
                await exit_(self._manager, type(error), error, error.__traceback__)
        except Exception as exc:
            if exc is error:
                return  # the manager re-raised the start failure; it is raised already
            raise self._error("failed on exit", exc) from exc
        finally:
            self._manager = None

    def _error(self, what: str, exc: Exception) -> LifespanError:
        return LifespanError(
            f"lifespan {self.name} {what}: {type(exc).__name__}: {redact(str(exc))}",
            lifespan=self.name,
        )
