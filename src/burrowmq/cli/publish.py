"""The ``burrowmq publish`` command: one confirmed message, from the command line.

``burrowmq publish EXCHANGE [BODY] --routing-key RK [--header K=V]...``: BODY is JSON
text, ``@file`` (a file of JSON) or ``-`` (JSON from stdin); with ``--raw`` the bytes are
sent as they are. The message is published ``mandatory`` (a message no queue takes is an
error, not a silent drop) unless ``--allow-unroutable``; the message id is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from burrowmq.cli.connection import connect, connection_options
from burrowmq.cli.exits import EXIT_OK
from burrowmq.exceptions import ConfigurationError

__all__ = ["add_publish_command", "read_body"]


def read_body(text: str | None, *, raw: bool) -> Any:
    """The body a command line gives: JSON text, ``@file``, ``-`` for stdin.

    Returns:
        The parsed JSON value, or the bytes themselves with ``raw``.

    Raises:
        ConfigurationError: the file cannot be read, or the text is not JSON.
    """
    if text is None or text == "-":
        data = sys.stdin.buffer.read()
        where = "stdin"
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the body from {path}: {exc.strerror}") from exc
        where = str(path)
    else:
        data = text.encode()
        where = "the body"
    if raw:
        return data
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ConfigurationError(
            f"{where} is not valid JSON ({exc}); pass --raw to send bytes as they are"
        ) from None


def header_pair(text: str) -> tuple[str, Any]:
    """``K=V`` into a header: V as JSON when it parses (``n=1``, ``ok=true``), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a header is KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def add_publish_command(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add ``publish`` to the CLI's subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        parents: parsers whose options every subcommand also accepts (logging).

    Returns:
        The ``publish`` parser.
    """
    publish = commands.add_parser(
        "publish",
        help="publish one message, confirmed, and print its id",
        description="Publish one message to EXCHANGE ('' is the default exchange) and wait "
        "for the broker's confirm; print its message id.",
        parents=[*parents, connection_options()],
    )
    publish.add_argument("exchange", help="the exchange ('' for the default exchange)")
    publish.add_argument("body", nargs="?", help="JSON text, @file, or - for stdin (default)")
    publish.add_argument("--routing-key", "-k", default="", help="the routing key")
    publish.add_argument(
        "--header", "-H", action="append", type=header_pair, default=[], metavar="KEY=VALUE"
    )
    publish.add_argument("--raw", action="store_true", help="send the body's bytes as they are")
    publish.add_argument("--content-type", help="the content type (default: by the body)")
    publish.add_argument(
        "--allow-unroutable",
        action="store_true",
        help="do not fail when no queue takes the message",
    )
    publish.add_argument("--transient", action="store_true", help="delivery mode 1")
    publish.add_argument("--json", action="store_true", help="print a JSON line")
    publish.set_defaults(handler=_cmd_publish)
    return publish  # type: ignore[no-any-return]


async def _cmd_publish(args: argparse.Namespace) -> int:
    body = read_body(args.body, raw=args.raw)
    async with connect(args, "burrowmq-cli") as app:
        message_id = await app.publish(
            args.exchange,
            body,
            routing_key=args.routing_key,
            headers=dict(args.header),
            mandatory=not args.allow_unroutable,
            persistent=not args.transient,
            content_type=args.content_type,
            timeout=30.0,
        )
    if args.json:
        print(json.dumps({"message_id": message_id, "exchange": args.exchange,
                          "routing_key": args.routing_key}))  # fmt: skip
    else:
        print(message_id)
    return EXIT_OK
