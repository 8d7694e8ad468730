"""The ``burrowmq dlq`` commands: read, replay and purge a route's dead letters.

QUEUE is the work queue; its dead letters are in ``QUEUE.dlq``. Everything goes over
AMQP (no management API): ``list`` and ``show`` read messages and put them back (which
counts as a delivery on a quorum queue), ``replay`` republishes each chosen message to
the exchange and routing key it was first published with, waits for the broker's
confirm, then acks the dead letter (so a replay cut short loses nothing: at worst the
message being replayed is in both places), and ``purge`` empties the dead-letter queue.
Output is for people; ``--json`` prints JSON lines for scripts.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from burrowmq.cli.connection import connect
from burrowmq.cli.deliveries import Deliveries
from burrowmq.cli.exits import EXIT_FAILURE, EXIT_OK
from burrowmq.cli.group import CommandGroup, fail, require_queue
from burrowmq.exceptions import BurrowError, ConfigurationError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.routing.dead_letter import (
    HEADER_EXCEPTION_MESSAGE,
    HEADER_EXCEPTION_TYPE,
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_QUEUE,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_RETRY_COUNT,
    HEADER_UNDECODABLE,
    dead_letter_queue,
    original,
)

__all__ = ["add_dlq_commands"]

_DEAD_LETTER_HEADERS = (
    HEADER_EXCEPTION_TYPE,
    HEADER_EXCEPTION_MESSAGE,
    HEADER_ORIGINAL_EXCHANGE,
    HEADER_ORIGINAL_ROUTING_KEY,
    HEADER_ORIGINAL_QUEUE,
    HEADER_RETRY_COUNT,
    HEADER_UNDECODABLE,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)
_READ_TIMEOUT = 2.0
_APP_NAME = "burrowmq-cli dlq"


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def describe(delivery: Delivery) -> dict[str, Any]:
    """What a dead letter says about itself, as plain data."""
    props = delivery.properties
    headers = props.headers
    return {
        "message_id": props.message_id,
        "exception_type": _text(headers.get(HEADER_EXCEPTION_TYPE)),
        "exception_message": _text(headers.get(HEADER_EXCEPTION_MESSAGE)),
        "original_exchange": _text(headers.get(HEADER_ORIGINAL_EXCHANGE)),
        "original_routing_key": _text(headers.get(HEADER_ORIGINAL_ROUTING_KEY)),
        "retries": headers.get(HEADER_RETRY_COUNT),
        "timestamp": props.timestamp.isoformat() if isinstance(props.timestamp, datetime) else None,
        "content_type": props.content_type,
        "size": len(delivery.body),
    }


class _Reader(Deliveries):
    """Reads the dead letters of one queue, up to ``limit``, holding them unacked."""

    def __init__(self, transport: Transport, queue: str, limit: int) -> None:
        super().__init__(transport, queue, timeout=_READ_TIMEOUT)
        self._limit = limit

    async def __aenter__(self) -> Self:
        count = await require_queue(self.transport, self.queue, "dead-letter queue")
        self.expected = min(count, self._limit)
        if self.expected:
            await self.start(prefetch=max(1, min(self.expected, 1000)))
        return self


def _replayed_headers(headers: dict[str, Any], queue: str) -> dict[str, Any]:
    kept = {k: v for k, v in headers.items() if k not in _DEAD_LETTER_HEADERS}
    kept["x-replayed-from"] = queue
    return kept


def _where_to(delivery: Delivery) -> tuple[str, str] | None:
    """Where a dead letter was first published (burrowmq's headers, else x-death)."""
    headers = delivery.properties.headers
    exchange = original(headers, HEADER_ORIGINAL_EXCHANGE, "\0")
    routing_key = original(headers, HEADER_ORIGINAL_ROUTING_KEY, "\0")
    if exchange != "\0" and routing_key != "\0":
        return exchange, routing_key
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
        first = deaths[-1]
        keys = first.get("routing-keys")
        source = _text(first.get("exchange"))
        if source is not None and isinstance(keys, list) and keys and _text(keys[0]) is not None:
            return source, str(_text(keys[0]))
    return None


def _where_filter(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    key, sep, value = text.partition("=")
    if not sep or key != "exception-type" or not value:
        raise ConfigurationError(f"--where takes exception-type=NAME, got {text!r}")
    return key, value


async def _cmd_list(args: argparse.Namespace) -> int:
    queue = dead_letter_queue(args.queue)
    rows: list[dict[str, Any]] = []
    async with (
        connect(args, _APP_NAME) as app,
        _Reader(app.transport, queue, args.limit) as reader,
    ):
        while len(rows) < reader.expected and (delivery := await reader.next()) is not None:
            rows.append(describe(delivery))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print(f"{queue}: no dead letters")
        return EXIT_OK
    print(f"{queue}: {len(rows)} dead letter{'s' if len(rows) != 1 else ''}")
    for row in rows:
        reason = (row["exception_message"] or "")[:70]
        print(
            f"  {row['message_id'] or '-'}  {row['exception_type'] or '-'}: {reason}"
            f"  (from {row['original_exchange']!r} / {row['original_routing_key']!r},"
            f" {row['retries'] if row['retries'] is not None else '?'} retries)"
        )
    return EXIT_OK


async def _cmd_show(args: argparse.Namespace) -> int:
    queue = dead_letter_queue(args.queue)
    async with (
        connect(args, _APP_NAME) as app,
        _Reader(app.transport, queue, 1_000_000) as reader,
    ):
        found = None
        seen = 0
        while seen < reader.expected and (delivery := await reader.next()) is not None:
            seen += 1
            if delivery.properties.message_id == args.message_id:
                found = delivery
                break
        if found is None:
            return fail(f"no dead letter {args.message_id!r} in {queue}")
        props = found.properties
        shown = {
            **describe(found),
            "headers": {k: _plain(v) for k, v in props.headers.items()},
            "correlation_id": props.correlation_id,
            "body": found.body.decode("utf-8", "replace"),
        }
    print(json.dumps(shown, indent=None if args.json else 2, ensure_ascii=False, default=str))
    return EXIT_OK


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _cmd_replay(args: argparse.Namespace) -> int:
    queue = dead_letter_queue(args.queue)
    where = _where_filter(args.where)
    builder = MessageBuilder(app_id="burrowmq-cli")
    replayed = skipped = failed = 0
    async with connect(args, _APP_NAME) as app:
        transport = app.transport
        async with _Reader(transport, queue, 10_000_000) as reader:
            seen = 0
            while seen < reader.expected and (args.limit is None or replayed < args.limit):
                delivery = await reader.next()
                if delivery is None:
                    break
                seen += 1
                row = describe(delivery)
                if where is not None and row["exception_type"] != where[1]:
                    skipped += 1  # left unacked: back in the queue when the reader closes
                    continue
                target = _where_to(delivery)
                if target is None:
                    failed += 1
                    _report(args, row, "kept", "it does not say where it was first published")
                    continue
                exchange, routing_key = target
                props = builder.copy(
                    delivery.properties,
                    headers=_replayed_headers(delivery.properties.headers, queue),
                )
                try:
                    await transport.publish(
                        exchange, routing_key, delivery.body, props, mandatory=True, timeout=30
                    )
                except BurrowError as error:
                    failed += 1
                    _report(args, row, "kept", str(error))
                    continue
                await delivery.ack()  # only once the copy is confirmed where it goes
                replayed += 1
                _report(args, row, "replayed", f"to {exchange!r} / {routing_key!r}")
    summary = {"replayed": replayed, "skipped": skipped, "kept": failed, "queue": queue}
    if args.json:
        print(json.dumps({"summary": summary}))
    else:
        print(f"{queue}: {replayed} replayed, {skipped} skipped by --where, {failed} kept")
    return EXIT_OK if not failed else EXIT_FAILURE


def _report(args: argparse.Namespace, row: dict[str, Any], outcome: str, detail: str) -> None:
    if args.json:
        print(json.dumps({"message_id": row["message_id"], "outcome": outcome, "detail": detail}))
    elif outcome != "replayed" or args.verbose:
        print(f"  {row['message_id'] or '-'}: {outcome}: {detail}")


async def _cmd_purge(args: argparse.Namespace) -> int:
    queue = dead_letter_queue(args.queue)
    if not args.yes:
        raise ConfigurationError(f"purging {queue} deletes its dead letters for good: add --yes")
    async with connect(args, _APP_NAME) as app:
        await require_queue(app.transport, queue, "dead-letter queue")
        removed = await app.transport.purge_queue(queue)
    if args.json:
        print(json.dumps({"queue": queue, "purged": removed}))
    else:
        print(f"{queue}: {removed} dead letters purged")
    return EXIT_OK


def add_dlq_commands(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add the ``dlq`` command group to the CLI's subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        parents: parsers whose options every subcommand also accepts (logging).

    Returns:
        The ``dlq`` parser.
    """
    dlq = CommandGroup(
        commands,
        "dlq",
        "read, replay and purge a route's dead letters",
        subject=("queue", "the work queue (its dead letters are in QUEUE.dlq)"),
        json_help="print JSON lines",
        parents=parents,
    )
    listing = dlq.add("list", "list the dead letters of QUEUE (they stay in QUEUE.dlq)", _cmd_list)
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    show = dlq.add("show", "show one dead letter of QUEUE: properties, headers and body", _cmd_show)
    show.add_argument("message_id", help="the message id")
    replay = dlq.add(
        "replay",
        "republish dead letters of QUEUE where they were first published, then ack them",
        _cmd_replay,
    )
    replay.add_argument("--limit", type=int, help="replay at most this many")
    replay.add_argument("--where", help="only those with exception-type=NAME")
    replay.add_argument("--verbose", "-v", action="store_true", help="a line per message")
    purge = dlq.add("purge", "delete every dead letter of QUEUE", _cmd_purge)
    purge.add_argument("--yes", action="store_true", help="yes, delete them")
    return dlq.parser
