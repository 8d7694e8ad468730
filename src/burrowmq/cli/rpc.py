"""The ``burrowmq rpc`` command group: ``burrowmq rpc call service.method '{"a": 1}'``.

Registered by :func:`burrowmq.cli.build_parser` through :func:`add_rpc_commands`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from burrowmq.cli.connection import connect, connection_options
from burrowmq.cli.exits import EXIT_FAILURE, EXIT_OK
from burrowmq.exceptions import ConfigurationError, RemoteError

__all__ = ["add_rpc_commands"]


def add_rpc_commands(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add the ``rpc`` command group to the CLI's subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        parents: parsers whose options every subcommand also accepts (logging).

    Returns:
        The ``rpc`` parser.
    """
    rpc = commands.add_parser("rpc", help="call remote procedures")
    group = rpc.add_subparsers(dest="rpc_command", metavar="SUBCOMMAND")
    group.required = True
    call = group.add_parser(
        "call",
        help="call a procedure and print its reply as JSON",
        description="Call SERVICE.METHOD with a JSON payload; print the reply as JSON, "
        "or the remote error (exit status 1).",
        parents=[*parents, connection_options()],
    )
    call.add_argument("procedure", help="the procedure, service.method")
    call.add_argument("payload", nargs="?", default="null", help="the request as JSON")
    call.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the reply (default: the App's, rpc_timeout=30)",
    )
    call.add_argument("--name", default="burrowmq-cli", help="the connection name")
    call.set_defaults(handler=_cmd_call)
    return rpc  # type: ignore[no-any-return]


async def _cmd_call(args: argparse.Namespace) -> int:

    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"the payload is not valid JSON: {exc}") from None
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigurationError(f"--timeout must be positive, got {args.timeout:g}")
    app = connect(args, args.name)
    async with app:
        try:
            reply = await app.call(args.procedure, payload, timeout=args.timeout)  # None: App's
        except RemoteError as exc:
            print(f"burrowmq: remote error: {exc.type}: {exc.remote_message}", file=sys.stderr)
            if exc.details is not None:
                print(json.dumps({"details": exc.details}, indent=2), file=sys.stderr)
            if exc.traceback:
                print(exc.traceback, file=sys.stderr, end="")
            return EXIT_FAILURE
    if isinstance(reply, bytes):
        sys.stdout.buffer.write(reply)
        sys.stdout.flush()
    else:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    return EXIT_OK
