"""The ``burrowmq`` command: one module per command group (run, publish, rpc, dlq, stream,
topology, asyncapi).

Each group registers its subcommands in :func:`build_parser`. Being an application, the
CLI configures structlog for its own process; the library never does. Nothing in
burrowmq imports this package.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from burrowmq.cli.asyncapi import add_asyncapi_command
from burrowmq.cli.dlq import add_dlq_commands
from burrowmq.cli.exits import EXIT_FAILURE, EXIT_USAGE
from burrowmq.cli.publish import add_publish_command
from burrowmq.cli.rpc import add_rpc_commands
from burrowmq.cli.run import add_run_command, load_app
from burrowmq.cli.stream import add_stream_commands
from burrowmq.cli.topology import add_topology_commands
from burrowmq.exceptions import BrokerUnreachable, BurrowError, ConfigurationError
from burrowmq.framework.log import configure

__all__ = ["build_parser", "load_app", "logging_options", "main"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def _version() -> str:
    try:
        return importlib.metadata.version("burrowmq")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        from burrowmq import __version__

        return __version__


def logging_options() -> argparse.ArgumentParser:
    """Logging options, accepted after a subcommand too (``burrowmq run x:app --log-json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", type=str.lower, choices=LOG_LEVELS, default=argparse.SUPPRESS
    )
    common.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS)
    common.add_argument(
        "--log-libraries", type=str.lower, choices=LOG_LEVELS, default=argparse.SUPPRESS
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group."""
    parser = argparse.ArgumentParser(
        prog="burrowmq", description="Run and inspect burrowmq services."
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default=os.environ.get("BURROWMQ_LOG_LEVEL"),
        help="the lowest level logged (default $BURROWMQ_LOG_LEVEL, else info for run, "
        "warning for the other commands)",
    )
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    parser.add_argument(
        "--log-libraries",
        type=str.lower,
        choices=LOG_LEVELS,
        help="also show the log lines of aio-pika and aiormq from this level "
        "(default: none; burrowmq reports their failures in its own words)",
    )
    parser.add_argument("--version", action="version", version=f"burrowmq {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    add_run_command(commands, parents=[logging_options()])
    add_publish_command(commands, parents=[logging_options()])
    add_rpc_commands(commands, parents=[logging_options()])
    add_dlq_commands(commands, parents=[logging_options()])
    add_stream_commands(commands, parents=[logging_options()])
    add_topology_commands(commands, parents=[logging_options()])
    add_asyncapi_command(commands, parents=[logging_options()])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``burrowmq`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level is not None and args.log_level.lower() not in LOG_LEVELS:
        # argparse checks choices on the command line, not on a default from the environment
        parser.error(
            f"BURROWMQ_LOG_LEVEL: invalid choice: {args.log_level!r} "
            f"(choose from {', '.join(LOG_LEVELS)})"
        )
    # A service logs its life at info; one-shot tools (rpc, topology) only what went wrong.
    level = (args.log_level or ("info" if args.command == "run" else "warning")).lower()
    configure(level, json=args.log_json, libraries=args.log_libraries)
    try:
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except BrokerUnreachable as exc:
        print(f"burrowmq: {exc}", file=sys.stderr)
        if not exc.answered:  # a broker that refused the login is running
            print(
                "burrowmq: is RabbitMQ running? Start it, or pass --url / set BURROWMQ_URL.",
                file=sys.stderr,
            )
        return EXIT_FAILURE
    except ConfigurationError as exc:
        print(f"burrowmq: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BurrowError as exc:
        print(f"burrowmq: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
