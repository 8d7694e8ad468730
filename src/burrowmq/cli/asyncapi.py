"""The ``burrowmq asyncapi`` command: an App's AsyncAPI 3.0 document.

``burrowmq asyncapi module:app [--format yaml|json] [--topology FILE] [--output FILE]
[--version VERSION]`` prints (or writes) the document; nothing connects to a broker.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from burrowmq.asyncapi import build_document, dump_document
from burrowmq.cli.exits import EXIT_OK
from burrowmq.exceptions import ConfigurationError

__all__ = ["add_asyncapi_command"]


def _cmd_asyncapi(args: argparse.Namespace) -> int:
    from burrowmq.cli.run import load_app

    app = load_app(args.app)
    document = build_document(app, topology=args.topology, version=args.api_version)
    text = dump_document(document, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"{args.output}: AsyncAPI document of {args.app} written", file=sys.stderr)
    return EXIT_OK


def add_asyncapi_command(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add ``asyncapi`` to the CLI's subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        parents: parsers whose options every subcommand also accepts (logging).

    Returns:
        The ``asyncapi`` parser.
    """
    parser = commands.add_parser(
        "asyncapi",
        help="print an App's AsyncAPI 3.0 document: burrowmq asyncapi module:app",
        parents=list(parents),
    )
    parser.add_argument("app", help="the App, as module:attribute")
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml")
    parser.add_argument(
        "--topology", metavar="FILE", help="a topology file merged with the App's own"
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write here, not to stdout")
    parser.add_argument(
        "--version",
        dest="api_version",
        default="0.0.0",
        help="info.version: the version of the service's API (default 0.0.0)",
    )
    parser.set_defaults(handler=_cmd_asyncapi)
    return parser  # type: ignore[no-any-return]
