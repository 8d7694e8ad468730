"""The ``burrowmq`` command.

``burrowmq run module:app`` runs a service until SIGINT/SIGTERM. Other command groups
(``topology``, ``rpc``) register their subcommands in :func:`build_parser`. Being an
application, the CLI configures structlog for its own process; the library never does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from burrowmq.app import App
from burrowmq.exceptions import BrokerUnreachable, BurrowError, ConfigurationError
from burrowmq.framework.logging import configure
from burrowmq.rpc.command import add_rpc_commands
from burrowmq.topology_commands import add_topology_commands

__all__ = ["build_parser", "load_app", "logging_options", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def load_app(target: str) -> App:
    """Import ``module:attribute`` and return the App it names.

    The current directory is put on ``sys.path`` first, as ``python -m`` would.

    Raises:
        ConfigurationError: the target is malformed, does not import, or is not an App.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"expected module:attribute (e.g. examples.direct:app), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"{module_name!r} has no attribute {attribute!r}") from None
    if callable(obj) and not isinstance(obj, App):
        obj = obj()  # an app factory
    if not isinstance(obj, App):
        raise ConfigurationError(f"{target} is {type(obj).__name__}, not a burrowmq App")
    return obj


def _cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    if args.url:
        app.use_url(args.url)  # a URL on the command line wins over the one in the code
    app.run()
    return EXIT_OK


def logging_options() -> argparse.ArgumentParser:
    """Logging options, accepted after a subcommand too (``burrowmq run x:app --log-json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, help="debug, info, warning")
    common.add_argument("--log-json", action="store_true", default=argparse.SUPPRESS)
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group."""
    parser = argparse.ArgumentParser(
        prog="burrowmq", description="Run and inspect burrowmq services."
    )
    parser.add_argument("--log-level", default=os.environ.get("BURROWMQ_LOG_LEVEL"))
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run", help="run a service: burrowmq run module:app", parents=[logging_options()]
    )
    run.add_argument("app", help="the App to run, as module:attribute")
    run.add_argument("--url", action="append", help="broker URL (repeat for cluster nodes)")
    run.set_defaults(handler=_cmd_run)
    add_rpc_commands(commands, parents=[logging_options()])
    add_topology_commands(commands, parents=[logging_options()])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``burrowmq`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # A service logs its life at info; one-shot tools (rpc, topology) only what went wrong.
    level = args.log_level or ("info" if args.command == "run" else "warning")
    configure(level, json=args.log_json)
    try:
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except BrokerUnreachable as exc:
        print(f"burrowmq: {exc}", file=sys.stderr)
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
