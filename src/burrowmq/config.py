"""AppConfig: every setting of an App, validated and frozen.

An :class:`~burrowmq.App` keeps its settings in one :class:`AppConfig` value, so that a
copy of the App (:meth:`~burrowmq.App.replace`, which the test client uses) takes every
setting along: none can be forgotten by a hand-written list.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, overload
from urllib.parse import urlsplit

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.codecs import Codecs
from burrowmq.framework.instrument import Instrument, compose_instruments
from burrowmq.framework.lifespan import LifespanFactory, check_lifespan
from burrowmq.framework.middleware import Middleware, check_middleware
from burrowmq.framework.tls import TLS, tls_context
from burrowmq.framework.transport import Transport
from burrowmq.framework.urls import MEMORY_SCHEME, default_urls, mask_url
from burrowmq.routing.redelivery import DEFAULT_MAX_REDELIVERIES, check_max_redeliveries
from burrowmq.routing.retry import DEFAULT_RETRY, Retry
from burrowmq.routing.router import Router
from burrowmq.topology.model import Topology

__all__ = ["AppConfig", "Setting", "make_transport"]

T = TypeVar("T")


def _positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"App({what}=...) must be a positive int, got {value!r}")


@dataclass(frozen=True, slots=True)
class AppConfig:
    """Every setting of an App, frozen; :class:`App` documents each one.

    A copy of an App (:meth:`App.replace`) is made from this value as a whole, so no
    setting can be left behind.
    """

    routers: tuple[tuple[Router, str], ...] = ()
    urls: tuple[str, ...] = ()
    topology: str | Path | Topology | None = None
    name: str = "burrowmq"
    retry: Retry = DEFAULT_RETRY
    prefetch: int = 64
    concurrency: int = 16
    shutdown_timeout: float = 30.0
    middleware: tuple[Middleware, ...] = ()
    max_redeliveries: int | None = DEFAULT_MAX_REDELIVERIES
    connect_timeout: float = 5.0
    rpc_timeout: float = 30.0
    rpc_tracebacks: bool = False
    recovery_wait: float = 15.0
    instrumentation: tuple[Instrument, ...] = ()
    tls: TLS | ssl.SSLContext | None = None
    declare: bool = True
    lifespan: LifespanFactory | None = None
    dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] = field(
        default_factory=dict
    )
    codecs: Codecs = field(default_factory=Codecs)
    transport: Transport | None = field(default=None, compare=False)
    # Not an App argument: TestClient(fast_retries=True) clears it on its copy, so
    # retries run at once instead of waiting real time.
    retry_waits: bool = True

    def __post_init__(self) -> None:
        _positive(self.prefetch, "prefetch")
        _positive(self.concurrency, "concurrency")
        check_max_redeliveries(self.max_redeliveries)
        check_middleware(self.middleware)
        compose_instruments(self.instrumentation)
        check_lifespan(self.lifespan)
        overrides = self.dependency_overrides
        if not isinstance(overrides, Mapping) or not all(
            callable(k) and callable(v) for k, v in overrides.items()
        ):
            raise ConfigurationError(
                "dependency_overrides= takes a mapping of factories to the factories "
                f"called in their place, got {overrides!r}"
            )
        object.__setattr__(self, "dependency_overrides", dict(overrides))
        if not isinstance(self.codecs, Codecs):
            raise ConfigurationError(f"AppConfig(codecs=...) takes a Codecs, got {self.codecs!r}")
        wait = self.recovery_wait
        if isinstance(wait, bool) or not isinstance(wait, int | float):
            raise ConfigurationError(f"App(recovery_wait=...) takes seconds, got {wait!r}")
        object.__setattr__(self, "recovery_wait", max(0.0, float(wait)))
        if self.transport is None and not self.urls:
            object.__setattr__(self, "urls", default_urls(None))
        if self.tls is not None:
            tls_context(self.tls)  # a broken setting fails here, not at start
            plain = [u for u in self.urls if urlsplit(u).scheme == "amqp"]
            if plain:
                raise ConfigurationError(
                    f"App(tls=...) needs amqps:// URLs, got {mask_url(plain[0])!r}"
                )


class _Configured(Protocol):
    config: AppConfig


class Setting(Generic[T]):
    """An App attribute read from its :class:`AppConfig`."""

    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, obj: _Configured, owner: type) -> T: ...
    def __get__(self, obj: _Configured | None, owner: type) -> T | Setting[T]:
        return self if obj is None else getattr(obj.config, self.name)  # type: ignore[no-any-return,unused-ignore]


def make_transport(config: AppConfig) -> Transport:
    """The transport an App with ``config`` uses: the given one, memory, or AMQP."""
    if config.transport is not None:
        return config.transport
    if config.urls[0].startswith(f"{MEMORY_SCHEME}:"):
        from burrowmq.memory import MemoryTransport

        return MemoryTransport.shared(config.urls[0])
    from burrowmq.amqp import AmqpTransport

    return AmqpTransport(
        config.urls,
        connection_name=config.name,
        connect_timeout=config.connect_timeout,
        recovery_wait=config.recovery_wait,
        ssl_context=tls_context(config.tls),
    )
