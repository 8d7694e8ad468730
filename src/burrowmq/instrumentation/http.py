"""The probe server: ``/metrics``, ``/healthz`` and ``/readyz`` of a running App over HTTP.

Served with aiohttp (the ``http`` extra) on the App's own event loop by
``burrowmq run module:app --http HOST:PORT``:

- ``/healthz``: 200 while the App serves (starting, running, draining), else 503;
- ``/readyz``: 200 when it is ready (connected, every consumer consuming, not shutting
  down), else 503; the body is the health as JSON, naming what is not ready;
- ``/metrics``: the Prometheus text of the registry of the App's ``Prometheus()``
  instrument (404 without one).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from burrowmq.exceptions import ConfigurationError
from burrowmq.instrumentation.health import Health
from burrowmq.instrumentation.prometheus import Prometheus

__all__ = ["ProbeServer", "parse_address"]


class _Observed(Protocol):
    def health(self) -> Health: ...

    @property
    def instrumentation(self) -> tuple[Any, ...]: ...


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) into its parts.

    Raises:
        ConfigurationError: not ``HOST:PORT`` with a port in 1..65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"--http takes HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}")
    return host, int(port)


class ProbeServer:
    """Serves an App's health and metrics over HTTP while it runs.

    Args:
        app: the App (anything with ``health()`` and ``instrumentation``).
        host: the address to listen on.
        port: the port (0: any free one; see :attr:`port` once started).

    Raises:
        ConfigurationError: aiohttp is not installed (``burrowmq[http]``).
    """

    def __init__(self, app: _Observed, host: str, port: int) -> None:
        try:
            from aiohttp import web
        except ImportError:
            raise ConfigurationError("--http needs aiohttp: pip install 'burrowmq[http]'") from None
        self._web = web
        self._app = app
        self._host = host
        self._port = port
        self._runner: Any = None
        self.port = port

    async def start(self) -> None:
        """Start listening."""
        web = self._web
        server = web.Application()
        server.router.add_get("/healthz", self._healthz)
        server.router.add_get("/readyz", self._readyz)
        server.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses  # the port chosen for 0
        if addresses:
            self.port = int(addresses[0][1])

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _json(self, body: dict[str, Any], ready: bool) -> Any:
        return self._web.Response(
            status=200 if ready else 503,
            text=json.dumps(body, indent=2) + "\n",
            content_type="application/json",
        )

    async def _healthz(self, request: Any) -> Any:
        health = self._app.health()
        return self._json({"live": health.live, "state": health.state}, health.live)

    async def _readyz(self, request: Any) -> Any:
        health = self._app.health()
        return self._json(health.as_dict(), health.ready)

    async def _metrics(self, request: Any) -> Any:
        registries = [i.registry for i in self._app.instrumentation if isinstance(i, Prometheus)]
        if not registries:
            return self._web.Response(
                status=404, text="no metrics: the app has no Prometheus() instrument\n"
            )
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = b"".join(generate_latest(r) for r in dict.fromkeys(registries))
        return self._web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
