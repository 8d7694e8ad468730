"""The options of every command that connects to a broker: ``--url`` and TLS, and the
App that connects as they say (:func:`connect`).

``--tls-ca``, ``--tls-cert``, ``--tls-key``, ``--tls-server-name`` and ``--tls-no-verify``
make a :class:`~burrowmq.TLS`; the key's password comes from ``$BURROWMQ_TLS_KEY_PASSWORD``
(never a flag: command lines are visible to every user of the machine).
"""

from __future__ import annotations

import argparse
import os

from burrowmq.app import App
from burrowmq.framework.tls import TLS
from burrowmq.framework.urls import default_urls

__all__ = [
    "KEY_PASSWORD_ENV",
    "add_tls_options",
    "connect",
    "connection_options",
    "first_url",
    "tls_of",
]

KEY_PASSWORD_ENV = "BURROWMQ_TLS_KEY_PASSWORD"


def connection_options(*, url: bool = True) -> argparse.ArgumentParser:
    """A parent parser with ``--url`` (unless ``url=False``) and the TLS options."""
    parser = argparse.ArgumentParser(add_help=False)
    if url:
        parser.add_argument("--url", action="append", help="broker URL (repeat for cluster nodes)")
    add_tls_options(parser)
    return parser


def first_url(args: argparse.Namespace) -> str:
    """The first ``--url`` given, else ``$BURROWMQ_URL``, else the local broker's URL."""
    return str(args.url[0]) if args.url else default_urls(None)[0]


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """Add the TLS options to ``parser``, in a group of their own."""
    tls = parser.add_argument_group("TLS (amqps:// URLs)")
    tls.add_argument("--tls-ca", metavar="FILE", help="the CA that signed the broker's certificate")
    tls.add_argument("--tls-cert", metavar="FILE", help="this client's certificate (mutual TLS)")
    tls.add_argument("--tls-key", metavar="FILE", help=f"its key (password in ${KEY_PASSWORD_ENV})")
    tls.add_argument("--tls-server-name", metavar="NAME", help="the name the certificate carries")
    tls.add_argument(
        "--tls-no-verify", action="store_true", help="do not verify the broker (debugging only)"
    )


def tls_of(args: argparse.Namespace) -> TLS | None:
    """The TLS settings the options give, or ``None`` when none was given.

    Raises:
        ConfigurationError: a file is missing, or a key without a certificate.
    """
    given = (
        args.tls_ca,
        args.tls_cert,
        args.tls_key,
        args.tls_server_name,
        args.tls_no_verify,
    )
    if not any(given):
        return None
    return TLS(
        ca_file=args.tls_ca,
        cert_file=args.tls_cert,
        key_file=args.tls_key,
        key_password=os.environ.get(KEY_PASSWORD_ENV) or None,
        verify=not args.tls_no_verify,
        server_hostname=args.tls_server_name,
    )


def connect(args: argparse.Namespace, name: str) -> App:
    """An App named ``name`` connecting as the connection options say (enter it)."""
    return App(url=args.url, name=name, tls=tls_of(args))
