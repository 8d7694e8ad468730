"""TLS: how an App verifies the broker and proves itself, as one value.

``App(url="amqps://...", tls=TLS(ca_file="ca.pem"))`` verifies the broker's certificate
against that CA (and its host name); ``cert_file``/``key_file`` add a client certificate
for mutual TLS, ``key_password`` unlocks an encrypted key. An ``ssl.SSLContext`` made by
hand may be given instead. The management client of the topology tools uses the same.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burrowmq.exceptions import ConfigurationError

__all__ = ["TLS", "tls_context"]


class _NamedContext(ssl.SSLContext):
    """An SSLContext that checks the broker's certificate against a fixed host name."""

    server_name: str | None = None

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        if self.server_name is not None:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.server_name is not None:
            kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class TLS:
    """TLS settings for the connections to the broker (and its management API).

    Args:
        ca_file: PEM file of the CA(s) that signed the broker's certificate (default: the
            system's trusted CAs).
        cert_file: PEM file of this client's certificate, for mutual TLS.
        key_file: PEM file of its private key (default: in ``cert_file``).
        key_password: the password of an encrypted key; never shown in reprs or logs.
        verify: verify the broker's certificate and host name (turn off only to debug).
        server_hostname: the name the broker's certificate must carry, when it is not
            the URL's host (connecting by IP address, through a tunnel).

    Raises:
        ConfigurationError: a file is missing, or a key without a certificate.
    """

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    key_password: str | None = field(default=None, repr=False)
    verify: bool = True
    server_hostname: str | None = None

    def __post_init__(self) -> None:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigurationError(f"TLS({name}=...): no such file: {path}")
        if self.key_file is not None and self.cert_file is None:
            raise ConfigurationError("TLS(key_file=...) needs cert_file= too")

    def context(self) -> ssl.SSLContext:
        """The client ``SSLContext`` these settings describe.

        Raises:
            ConfigurationError: a file is not a PEM certificate or key, or the key
                password is wrong.
        """
        context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            context.verify_mode = ssl.CERT_REQUIRED
            context.check_hostname = True
            try:
                if self.ca_file is not None:
                    context.load_verify_locations(cafile=str(self.ca_file))
                else:
                    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
            except ssl.SSLError as exc:
                raise ConfigurationError(
                    f"TLS(ca_file=...): {self.ca_file} holds no PEM certificate ({exc.reason})"
                ) from None
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None:
            try:
                context.load_cert_chain(
                    str(self.cert_file),
                    None if self.key_file is None else str(self.key_file),
                    password=self.key_password,
                )
            except ssl.SSLError as exc:
                raise ConfigurationError(
                    f"TLS(cert_file=..., key_file=...): cannot load the client certificate "
                    f"and key ({exc.reason or 'wrong key password, or not PEM'})"
                ) from None
        context.server_name = self.server_hostname
        return context


def tls_context(tls: TLS | ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The ``SSLContext`` of an App's ``tls=`` setting (``None`` for none).

    Raises:
        ConfigurationError: ``tls`` is neither a TLS nor an SSLContext, or it is broken.
    """
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    if isinstance(tls, TLS):
        return tls.context()
    raise ConfigurationError(f"tls= takes a burrowmq.TLS or an ssl.SSLContext, got {tls!r}")
