"""Broker URLs: defaults, validation and masking (a password never leaves this module),
and the redaction of credentials in any text burrowmq passes on."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from burrowmq.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_URL",
    "MEMORY_SCHEME",
    "default_urls",
    "describe_target",
    "mask_url",
    "redact",
    "vhost_of",
]

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
MEMORY_SCHEME = "memory"
_SCHEMES = {"amqp", "amqps", MEMORY_SCHEME}


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``.

    Args:
        url: a broker URL such as ``amqp://user:secret@host:5672/vhost``.

    Returns:
        e.g. ``amqp://user:***@host:5672/vhost``; unparsable URLs come back as ``"<url>"``.
    """
    if "://" not in url and "@" in url:
        # No scheme: urlsplit would read "user" as the scheme and miss the password.
        userinfo, _, rest = url.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return f"{user}:***@{rest}" if ":" in userinfo else url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{parts.username or ''}:***@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<url>"


_URL_SECRET = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]*(?P<tail>@)")
_PAIR_SECRET = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)"
    r"\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&)]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with the credentials it holds masked, for logs, headers and replies.

    Masks the password of URLs (``postgresql://app:***@db/x``) and the values of
    ``password=``, ``passwd=``, ``pwd=``, ``secret=``, ``token=``, ``api_key=`` and
    ``access_key=`` pairs (also with ``:``), as database drivers and HTTP clients put
    them in their error messages.
    """
    if "://" in text:
        text = _URL_SECRET.sub(r"\g<head>***\g<tail>", text)
    return _PAIR_SECRET.sub(r"\g<head>***", text)


def vhost_of(url: str) -> str:
    """The virtual host a URL names (``/`` when its path is empty)."""
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def describe_target(url: str) -> str:
    """Describe where a URL connects, for messages: ``host:port/vhost as user``."""
    try:
        parts = urlsplit(url)
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        vhost = vhost_of(url)
        user = unquote(parts.username) if parts.username else "guest"
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port} (vhost {vhost!r}) as user {user!r}"
    except ValueError:
        return "<unparsable url>"


def default_urls(url: str | Sequence[str] | None) -> tuple[str, ...]:
    """Resolve the URLs an App connects to, checking each one's scheme.

    Args:
        url: one URL, a list of them (cluster nodes, tried in turn), or ``None`` for
            ``$BURROWMQ_URL``, else ``amqp://guest:guest@localhost:5672/``.

    Raises:
        ConfigurationError: an empty list, or a URL with an unknown scheme.
    """
    if url is None:
        url = os.environ.get("BURROWMQ_URL") or DEFAULT_URL
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls:
        raise ConfigurationError("App(url=...) got an empty list of URLs")
    for item in urls:
        try:
            parts = urlsplit(item)
            scheme = parts.scheme
            _ = parts.port  # an out-of-range or non-numeric port raises here
        except ValueError as exc:
            raise ConfigurationError(f"cannot parse broker URL {mask_url(item)!r}: {exc}") from None
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                f"broker URL {mask_url(item)!r} has scheme {scheme!r}; "
                "expected amqp://, amqps:// or memory://"
            )
    schemes = {urlsplit(u).scheme == MEMORY_SCHEME for u in urls}
    if len(schemes) > 1:
        raise ConfigurationError("memory:// cannot be mixed with amqp:// URLs")
    return urls
