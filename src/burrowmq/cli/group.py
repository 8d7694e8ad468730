"""A command group whose subcommands work on one named thing of a broker (``dlq``, ``stream``).

``burrowmq GROUP SUBCOMMAND THING``: every subcommand takes the connection options
(``--url`` and TLS), the thing it works on as its first argument and ``--json``; its
handler connects with :func:`burrowmq.cli.connection.connect`, finds the queue it reads with
:func:`require_queue` and, when it fails, says why on stderr and returns the exit status
:func:`fail` gives.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from burrowmq.cli.connection import connection_options
from burrowmq.cli.exits import EXIT_FAILURE
from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.transport import Transport

__all__ = ["CommandGroup", "fail", "require_queue"]


Handler = Callable[[argparse.Namespace], Any]


class CommandGroup:
    """The parser of ``burrowmq NAME``, to which :meth:`add` adds subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        name: the group's command (its subcommand is ``args.<name>_command``).
        help: the group's line in ``burrowmq --help``.
        subject: the name and help of the argument every subcommand takes first.
        json_help: the help of ``--json`` (what it prints).
        parents: parsers whose options every subcommand also accepts (logging).
    """

    def __init__(
        self,
        commands: Any,
        name: str,
        help: str,
        *,
        subject: tuple[str, str],
        json_help: str,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> None:
        self.parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
        self._subcommands = self.parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        self._subcommands.required = True
        self._subject = subject
        self._json_help = json_help
        self._parents = parents

    def add(self, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
        """Add the subcommand ``name``, run by ``handler``; return its parser."""
        parser: argparse.ArgumentParser = self._subcommands.add_parser(
            name, help=help, description=help, parents=[*self._parents, connection_options()]
        )
        parser.add_argument(self._subject[0], help=self._subject[1])
        parser.add_argument("--json", action="store_true", help=self._json_help)
        parser.set_defaults(handler=handler)
        return parser


def fail(message: str) -> int:
    """Say on stderr why the command failed; return the exit status of a failure."""
    print(f"burrowmq: {message}", file=sys.stderr)
    return EXIT_FAILURE


async def require_queue(transport: Transport, queue: str, what: str) -> int:
    """How many messages are ready in ``queue``, a ``what`` (``"stream"``) that must exist.

    Raises:
        ConfigurationError: there is no ``queue``.
    """
    count = await transport.message_count(queue)
    if count is None:
        raise ConfigurationError(f"there is no {what} {queue!r}")
    return count
