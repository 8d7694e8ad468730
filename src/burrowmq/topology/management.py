"""Management: a small client of RabbitMQ's HTTP management API (standard library only).

``burrowmq topology plan`` reads the live exchanges, queues, bindings and policies of a
virtual host through it, and ``apply`` writes policies with it (AMQP cannot). Requests
run ``urllib.request`` in a thread (:func:`asyncio.to_thread`), so the event loop never
blocks. The host and credentials come from the AMQP URL unless a management URL is given;
passwords never appear in errors.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from burrowmq.exceptions import ConfigurationError, TransportError
from burrowmq.framework.tls import TLS, tls_context
from burrowmq.framework.urls import mask_url

__all__ = ["DEFAULT_MANAGEMENT_PORT", "MANAGEMENT_URL_ENV", "ManagementClient"]

MANAGEMENT_URL_ENV = "BURROWMQ_MANAGEMENT_URL"
"""The environment variable with the management API's URL, when none is given."""

DEFAULT_MANAGEMENT_PORT = 15672
_TLS_MANAGEMENT_PORT = 15671


@dataclass(frozen=True, slots=True)
class _Target:
    base: str
    username: str
    password: str
    vhost: str


def _target(amqp_url: str, management_url: str | None) -> _Target:
    try:
        amqp = urlsplit(amqp_url)
        amqp.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ConfigurationError(f"cannot parse broker URL {mask_url(amqp_url)!r}") from None
    if amqp.scheme not in ("amqp", "amqps"):
        raise ConfigurationError(
            f"the management API needs an amqp:// or amqps:// URL, got {mask_url(amqp_url)!r}"
        )
    username = unquote(amqp.username) if amqp.username else "guest"
    password = unquote(amqp.password) if amqp.password is not None else "guest"
    vhost = unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
    if management_url is None:
        tls = amqp.scheme == "amqps"
        host = amqp.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        port = _TLS_MANAGEMENT_PORT if tls else DEFAULT_MANAGEMENT_PORT
        return _Target(f"{'https' if tls else 'http'}://{host}:{port}", username, password, vhost)
    try:
        given = urlsplit(management_url)
        given.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ConfigurationError(
            f"cannot parse management URL {mask_url(management_url)!r}"
        ) from None
    if given.scheme not in ("http", "https") or not given.hostname:
        raise ConfigurationError(
            f"the management URL must be http:// or https://host[:port], "
            f"got {mask_url(management_url)!r}"
        )
    if given.username:
        username = unquote(given.username)
        password = unquote(given.password or "")
    host = given.hostname if ":" not in given.hostname else f"[{given.hostname}]"
    netloc = f"{host}:{given.port}" if given.port else host
    base = urlunsplit((given.scheme, netloc, given.path.rstrip("/"), "", ""))
    return _Target(base, username, password, vhost)


class ManagementClient:
    """A client of the management API for one virtual host.

    Args:
        amqp_url: the broker URL; gives the host, the credentials and the virtual host.
        management_url: ``http(s)://[user:password@]host:port``, when the API is not on
            the broker's host at port 15672 (15671 for ``amqps``); default
            ``$BURROWMQ_MANAGEMENT_URL``, then that.
        tls: the TLS settings of the broker (:class:`~burrowmq.TLS` or an
            ``ssl.SSLContext``), for an ``https`` management API signed by the same CA.
        timeout: seconds allowed for each request.

    Raises:
        ConfigurationError: a URL cannot be parsed.
    """

    def __init__(
        self,
        amqp_url: str,
        *,
        management_url: str | None = None,
        timeout: float = 10.0,
        tls: TLS | ssl.SSLContext | None = None,
    ) -> None:
        self._context = tls_context(tls)
        target = _target(amqp_url, management_url or os.environ.get(MANAGEMENT_URL_ENV) or None)
        self._target = target
        self._timeout = timeout
        token = base64.b64encode(f"{target.username}:{target.password}".encode()).decode()
        self._authorization = f"Basic {token}"

    @property
    def vhost(self) -> str:
        """The virtual host this client reads and writes."""
        return self._target.vhost

    @property
    def description(self) -> str:
        """Where the client connects, for messages: ``http://host:15672 as user 'guest'``."""
        return f"{self._target.base} as user {self._target.username!r}"

    def _path(self, *parts: str) -> str:
        return "/api/" + "/".join(quote(p, safe="") for p in parts)

    def _send(self, method: str, path: str, body: Any) -> Any:
        url = self._target.base + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self._authorization)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        where = f"{method} {self._target.base}{unquote(path)}"
        try:
            with urllib.request.urlopen(
                request, timeout=self._timeout, context=self._context
            ) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, where) from None
        except urllib.error.URLError as exc:
            reason = exc.reason if isinstance(exc.reason, str) else _reason(exc.reason)
            raise TransportError(
                f"cannot reach the RabbitMQ management API at {self.description}: "
                f"{mask_url(str(reason))} (is the rabbitmq_management plugin enabled? "
                "pass --management-url if it listens elsewhere)"
            ) from None
        except (TimeoutError, OSError) as exc:
            raise TransportError(
                f"the RabbitMQ management API did not answer {where}: {_reason(exc)}"
            ) from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise TransportError(f"{where} answered something that is not JSON") from None

    def _http_error(self, exc: urllib.error.HTTPError, where: str) -> TransportError:
        detail = ""
        try:
            body = json.loads(exc.read() or b"{}")
            detail = str(body.get("reason") or body.get("error") or "")
        except (ValueError, OSError, AttributeError):
            pass
        if exc.code == 401:
            text = f"the management API refused {self.description}: wrong user or password"
        elif exc.code == 403:
            text = (
                f"the management API refused {self.description}: the user needs the "
                "management (or administrator) tag and permissions on the vhost"
            )
        else:
            text = f"{where} failed with HTTP {exc.code}" + (f": {detail}" if detail else "")
        return TransportError(mask_url(text))

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request to the API and return its decoded JSON answer.

        Args:
            method: ``GET``, ``PUT``, ``POST`` or ``DELETE``.
            path: the path below the API's base, e.g. ``/api/overview``.
            body: a JSON-able body, for ``PUT`` and ``POST``.

        Returns:
            The decoded answer, or ``None`` when it was empty.

        Raises:
            TransportError: the API could not be reached, or refused the request.
        """
        return await asyncio.to_thread(self._send, method, path, body)

    async def check_vhost(self) -> None:
        """Make sure the virtual host exists.

        Raises:
            TransportError: it does not, or the API cannot be reached.
        """
        try:
            await self.request("GET", self._path("vhosts", self.vhost))
        except TransportError as exc:
            if "HTTP 404" in str(exc):
                raise TransportError(f"virtual host {self.vhost!r} does not exist") from None
            raise

    async def list(self, kind: str) -> list[dict[str, Any]]:
        """The live entities of one kind in the virtual host.

        Args:
            kind: ``exchanges``, ``queues``, ``bindings`` or ``policies``.

        Raises:
            TransportError: the API cannot be reached or refused.
        """
        answer = await self.request("GET", self._path(kind, self.vhost))
        return [item for item in answer or [] if isinstance(item, dict)]

    async def queue(self, name: str) -> dict[str, Any] | None:
        """What the API says of one queue of the virtual host (``None``: there is none).

        Raises:
            TransportError: the API cannot be reached or refused.
        """
        try:
            answer = await self.request("GET", self._path("queues", self.vhost, name))
        except TransportError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        return answer if isinstance(answer, dict) else None

    async def put_policy(
        self,
        name: str,
        *,
        pattern: str,
        definition: dict[str, Any],
        apply_to: str = "all",
        priority: int = 0,
    ) -> None:
        """Create or update a policy in the virtual host.

        Raises:
            TransportError: the API cannot be reached or refused the policy.
        """
        body = {
            "pattern": pattern,
            "definition": definition,
            "apply-to": apply_to,
            "priority": priority,
        }
        await self.request("PUT", self._path("policies", self.vhost, name), body)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
