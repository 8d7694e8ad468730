"""The ``burrowmq run`` command, and how any command finds the App it names.

``burrowmq run module:app`` imports the App and runs it until SIGINT or SIGTERM, on
uvloop's event loop when uvloop is installed (``burrowmq[speed]``), else on asyncio's;
``--loop asyncio|uvloop`` chooses.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from burrowmq.app import App
from burrowmq.cli.exits import EXIT_OK
from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.log import get_logger
from burrowmq.instrumentation.http import ProbeServer, parse_address

__all__ = ["add_run_command", "load_app"]

_log = get_logger()


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


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``--loop`` (``None``: asyncio's own loop).

    Raises:
        ConfigurationError: ``uvloop`` asked for but not installed.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(
                "--loop uvloop: uvloop is not installed (pip install 'burrowmq[speed]')"
            ) from None
        return None
    return uvloop.new_event_loop


def _cmd_run(args: argparse.Namespace) -> int:
    factory = loop_factory(args.loop)
    app = load_app(args.app)
    if args.url:
        app.use_url(args.url)  # a URL on the command line wins over the one in the code
    _log.info("event_loop", loop="uvloop" if factory is not None else "asyncio")
    if args.http:
        host, port = parse_address(args.http)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve_with_probes(app, ProbeServer(app, host, port)))
    else:
        app.run(loop_factory=factory)
    return EXIT_OK


async def _serve_with_probes(app: App, probes: ProbeServer) -> None:
    """Serve the app with its probes up before it starts and after its drain."""
    await probes.start()
    _log.info("probes_serving", port=probes.port)
    try:
        await app.serve()
    finally:
        await probes.stop()


def add_run_command(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add ``run`` to the CLI's subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        parents: parsers whose options every subcommand also accepts (logging).

    Returns:
        The ``run`` parser.
    """
    run = commands.add_parser(
        "run", help="run a service: burrowmq run module:app", parents=list(parents)
    )
    run.add_argument("app", help="the App to run, as module:attribute")
    run.add_argument("--url", action="append", help="broker URL (repeat for cluster nodes)")
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="also serve /metrics, /healthz and /readyz over HTTP (needs burrowmq[http])",
    )
    run.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the event loop: uvloop when installed (burrowmq[speed]), else asyncio (default auto)",
    )
    run.set_defaults(handler=_cmd_run)
    return run  # type: ignore[no-any-return]
