"""The ``burrowmq stream`` commands: look at a stream, and re-drive it from an offset.

``stream info NAME`` prints the stream's size, its first and last offset, the consumers
connected to it and the stored mark of each named consumer. AMQP tells the offsets (a
consumer from ``first``, one from ``last`` read to its end) and the marks (each read
from its ``NAME.<consumer>.offset`` queue and handed back unacked); the management API
is asked only for what AMQP cannot tell: the byte size (when the broker reports one;
RabbitMQ 3.10 does not for streams), the consumers connected (as its statistics last
saw them, a few seconds late) and the offset queues that exist. The message count comes
from the offsets, which are contiguous. When it cannot be reached, that is said, and what AMQP
alone tells is printed (the marks of the consumers named with ``--consumer``).

``stream replay NAME --from OFFSET|TIME|first --to EXCHANGE`` publishes every message
from that offset (or the first stored at or after that ISO-8601 time) to EXCHANGE,
``mandatory`` and confirmed one by one, with its body, properties and headers (plus
``x-replayed-from`` and ``x-replayed-offset``) and its original routing key unless
``--routing-key`` is given. It stops at ``--until`` (an offset, included, or a time:
before the first message stored at or after it), at ``--limit``, or at the stream's
last offset as it was when the replay started, so a log that keeps growing ends. A
message the broker does not confirm (no queue bound, a nack), or one whose properties
could not all be read, stops the replay with an error naming its offset: nothing is
skipped. Destinations that belong to burrowmq
(``burrowmq.*``: RPC, the delay ladder) or to the broker (``amq.*`` but its standard
exchanges) are refused. The stream itself is never changed: reading a stream takes
nothing away.

Output is for people; ``--json`` prints one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from typing import Any

from burrowmq.cli.connection import connect, first_url, tls_of
from burrowmq.cli.deliveries import Deliveries
from burrowmq.cli.exits import EXIT_OK
from burrowmq.cli.group import CommandGroup, fail, require_queue
from burrowmq.exceptions import BurrowError, ConfigurationError, TopologyError, TransportError
from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.transport import Delivery, Transport
from burrowmq.framework.vocabulary import RESERVED_PREFIX, STANDARD_EXCHANGES
from burrowmq.routing.offsets import (
    OFFSET_HEADER,
    offset_of,
    offset_queue,
    read_mark,
    stream_bounds,
)
from burrowmq.topology.management import ManagementClient

__all__ = ["add_stream_commands", "named_consumers", "parse_position"]

OWN_PREFIX = "burrowmq."
"""Names burrowmq keeps for itself (the RPC exchange, the delay ladder)."""
REPLAYED_FROM = "x-replayed-from"
REPLAYED_OFFSET = "x-replayed-offset"
_OFFSET_SUFFIX = ".offset"
_PREFETCH = 256
_DELIVERY_TIMEOUT = 30.0
_APP_NAME = "burrowmq-cli stream"

Position = int | datetime.datetime | str


def parse_position(text: str, option: str) -> Position:
    """An offset (int >= 0), ``"first"``, or an ISO-8601 time with its zone.

    Raises:
        ConfigurationError: none of these, or a time without a zone.
    """
    if text == "first":
        return text
    try:
        value = int(text)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ConfigurationError(f"{option} takes an offset >= 0, got {text!r}")
        return value
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{option} takes an offset, 'first' or an ISO-8601 time with a zone "
            f"(2026-12-02T09:30:00+00:00), got {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise ConfigurationError(
            f"{option} {text!r} has no time zone: add one (+00:00 or Z) so that it means one moment"
        )
    return moment


# -- info --------------------------------------------------------------------------------


def named_consumers(stream: str, queues: Sequence[dict[str, Any]]) -> list[str]:
    """The named consumers of ``stream`` whose offset queues are among ``queues``.

    ``<stream>.<consumer>.offset`` queues, less those of a longer stream's consumers
    (``orders.eu.billing.offset`` belongs to the stream ``orders.eu`` when it exists).
    """
    prefix = f"{stream}."
    names = [q["name"] for q in queues if isinstance(q.get("name"), str)]
    longer = [
        q["name"]
        for q in queues
        if q.get("type") == "stream" and str(q.get("name", "")).startswith(prefix)
    ]
    found = []
    for queue in names:
        if not queue.startswith(prefix) or not queue.endswith(_OFFSET_SUFFIX):
            continue
        consumer = queue[len(prefix) : -len(_OFFSET_SUFFIX)]
        if consumer and not any(queue.startswith(f"{other}.") for other in longer):
            found.append(consumer)
    return sorted(found)


async def _management_view(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """What the management API says of the stream and its offset queues (or why nothing)."""
    client = ManagementClient(first_url(args), management_url=args.management_url, tls=tls_of(args))
    try:
        queue = await client.queue(name) or {}
        queues = await client.list("queues")
    except TransportError as exc:
        return {"reachable": False, "error": str(exc)}
    consumers = named_consumers(name, queues)
    details = []
    for consumer in queue.get("consumer_details") or []:
        channel = consumer.get("channel_details") or {}
        if not channel.get("connection_name"):
            continue  # its channel is gone: the API's statistics lag by a few seconds
        arguments = consumer.get("arguments") or {}
        details.append(
            {
                "tag": consumer.get("consumer_tag"),
                "connection": channel.get("connection_name"),
                "prefetch": consumer.get("prefetch_count"),
                "from": arguments.get(OFFSET_HEADER),
            }
        )
    return {
        "reachable": True,
        "type": queue.get("type"),
        "messages": queue.get("messages"),
        "bytes": queue.get("message_bytes"),
        "consumers": details,
        "named": consumers,
    }


async def _info(args: argparse.Namespace) -> dict[str, Any]:
    name = args.name
    async with connect(args, _APP_NAME) as app:
        transport = app.transport
        await require_queue(transport, name, "stream")
        management = await _management_view(args, name)  # before our own probes join
        if management["reachable"] and management.get("type") not in (None, "stream"):
            raise ConfigurationError(f"{name!r} is a {management['type']} queue, not a stream")
        bounds = await stream_bounds(transport, name)
        named = sorted(set(args.consumer or ()) | set(management.get("named") or ()))
        marks = []
        for consumer in named:
            queue = offset_queue(name, consumer)
            exists = await transport.message_count(queue) is not None
            value, problem = await read_mark(transport, queue) if exists else (None, None)
            behind = None
            if value is not None and (bounds is None or value > bounds[1]):
                end = "it is empty" if bounds is None else f"its last offset is {bounds[1]}"
                problem = f"it holds offset {value}, beyond the stream's end ({end})"
                value = None
            elif value is not None and bounds is not None:
                behind = bounds[1] - value
            marks.append(
                {
                    "consumer": consumer,
                    "queue": queue,
                    "exists": exists,
                    "offset": value,
                    "behind": behind,
                    "problem": problem,
                }
            )
    first, last = bounds if bounds is not None else (None, None)
    return {
        "stream": name,
        "first_offset": first,
        "last_offset": last,
        # Offsets are contiguous: exact now, where the API's count lags by seconds.
        "messages": last - first + 1 if first is not None and last is not None else 0,
        "bytes": management.get("bytes"),
        # AMQP's queue.declare-ok counts no consumers on a stream: only the API can.
        "consumers_connected": len(management["consumers"]) if management["reachable"] else None,
        "consumers": management.get("consumers"),
        "named_consumers": marks,
        "management": {"reachable": management["reachable"], "error": management.get("error")},
    }


def _print_info(info: dict[str, Any]) -> None:
    print(f"stream {info['stream']}")
    if info["first_offset"] is None:
        print("  offsets:  none (the stream holds no message)")
    else:
        print(f"  offsets:  {info['first_offset']} .. {info['last_offset']}")
    print(f"  messages: {info['messages']}")
    size = info["bytes"]
    print(f"  bytes:    {size if size is not None else 'unknown (the broker does not say)'}")
    connected = info["consumers_connected"]
    print(f"  consumers connected: {connected if connected is not None else 'unknown'}")
    for consumer in info["consumers"] or []:
        print(
            f"    {consumer['tag']}  on {consumer['connection']!r}, prefetch "
            f"{consumer['prefetch']}, started from {consumer['from']!r}"
        )
    marks = info["named_consumers"]
    print(f"  named consumers: {len(marks) if marks else 'none found'}")
    for mark in marks:
        if mark["problem"]:
            state = f"mark ignored by the consumer: {mark['problem']}"
        elif not mark["exists"]:
            state = f"no offset queue {mark['queue']!r}"
        elif mark["offset"] is None:
            state = "no mark stored yet"
        else:
            state = f"offset {mark['offset']} ({mark['behind']} behind the last)"
        print(f"    {mark['consumer']}: {state}")
    management = info["management"]
    if not management["reachable"]:
        print(
            f"  management API not reachable: {management['error']}\n"
            "  (shown: what AMQP tells; no byte size, no consumer list, and only the "
            "named consumers given with --consumer)"
        )


async def _cmd_info(args: argparse.Namespace) -> int:
    info = await _info(args)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, default=str))
    else:
        _print_info(info)
    return EXIT_OK


# -- replay ------------------------------------------------------------------------------


def _check_destination(exchange: str, routing_key: str | None, stream: str) -> None:
    """Refuse what belongs to burrowmq or the broker, and the stream itself."""
    if exchange.startswith(OWN_PREFIX):
        raise ConfigurationError(
            f"will not replay into {exchange!r}: names starting with {OWN_PREFIX!r} are "
            "burrowmq's own (RPC, delays)"
        )
    if exchange.startswith(RESERVED_PREFIX) and exchange not in STANDARD_EXCHANGES:
        raise ConfigurationError(
            f"will not replay into {exchange!r}: names starting with {RESERVED_PREFIX!r} "
            "belong to the broker"
        )
    if exchange == "" and routing_key is not None:
        if routing_key.startswith((OWN_PREFIX, RESERVED_PREFIX)):
            raise ConfigurationError(
                f"will not replay into queue {routing_key!r}: its name is reserved"
            )
        if routing_key == stream:
            raise ConfigurationError(f"will not replay stream {stream!r} into itself")


async def _offset_at(transport: Transport, stream: str, moment: datetime.datetime) -> int | None:
    """The offset of the first message stored at or after ``moment`` (``None``: none yet).

    The broker answers per chunk (the messages written together), so this is the first
    offset of the first chunk written at or after ``moment``.
    """
    async with Deliveries(transport, stream, timeout=2.0) as deliveries:
        await deliveries.start(prefetch=1, arguments={OFFSET_HEADER: moment})
        delivery = await deliveries.next()
    if delivery is None:
        return None  # nothing stored at or after that time
    offset = offset_of(delivery)
    if offset is None:
        raise ConfigurationError(f"queue {stream!r} is not a stream")
    return offset


class _Stopped(Exception):  # caught in _cmd_replay, never seen by a caller
    """The replay stopped before its end: a message was not confirmed where it went."""


async def _replay(args: argparse.Namespace, out: dict[str, Any]) -> None:
    stream, exchange = args.name, args.to
    start = parse_position(args.from_, "--from")
    until = parse_position(args.until, "--until") if args.until is not None else None
    if args.limit is not None and args.limit < 0:
        raise ConfigurationError(f"--limit takes a count >= 0, got {args.limit}")
    _check_destination(exchange, args.routing_key, stream)
    builder = MessageBuilder(app_id="burrowmq-cli")
    async with connect(args, _APP_NAME) as app:
        transport = app.transport
        await require_queue(transport, stream, "stream")
        if exchange and not exchange.startswith(RESERVED_PREFIX):
            try:
                await transport.declare_exchange(exchange, "direct", passive=True)
            except TopologyError:
                raise TopologyError(
                    f"cannot replay to exchange {exchange!r}: it does not exist",
                    entity=f"exchange {exchange!r}",
                ) from None
        bounds = await stream_bounds(transport, stream)
        if bounds is None:
            out["stopped_by"] = "end"
            return
        end = bounds[1]
        out["stopped_by"] = "end"
        if isinstance(until, str):
            raise ConfigurationError("--until takes an offset or a time, not 'first'")
        if isinstance(until, datetime.datetime):
            at = await _offset_at(transport, stream, until)
            until = None if at is None else at - 1  # before the first stored at that time
        if until is not None and until < end:
            end, out["stopped_by"] = until, "until"
        out["end_offset"] = end
        if start == "first":
            start = bounds[0]
        elif isinstance(start, datetime.datetime):
            at = await _offset_at(transport, stream, start)
            start = end + 1 if at is None else at
        if args.limit == 0 or not isinstance(start, int) or start > end:
            return
        async with Deliveries(transport, stream, timeout=_DELIVERY_TIMEOUT) as deliveries:
            await deliveries.start(prefetch=_PREFETCH, arguments={OFFSET_HEADER: start})
            while True:
                delivery = await deliveries.next()
                if delivery is None:
                    raise _Stopped(
                        f"stream {stream!r} delivered nothing for {_DELIVERY_TIMEOUT:.0f}s "
                        f"after offset {out['last_offset']} (it should reach {end})"
                    )
                offset = offset_of(delivery)
                if offset is None:
                    raise ConfigurationError(f"{stream!r} is not a stream")
                if offset < start:
                    await delivery.ack()  # the broker starts at the chunk holding it
                    continue
                if offset > end:
                    break
                await _send(transport, builder, delivery, offset, args, out)
                await delivery.ack()  # on a stream an ack only frees credit
                if args.limit is not None and out["replayed"] >= args.limit:
                    out["stopped_by"] = "limit"
                    break
                if offset == end:
                    break


async def _send(
    transport: Transport,
    builder: MessageBuilder,
    delivery: Delivery,
    offset: int,
    args: argparse.Namespace,
    out: dict[str, Any],
) -> None:
    if delivery.undecodable:
        raise _Stopped(
            f"replay stopped at offset {offset} of stream {args.name!r}: its "
            f"{', '.join(sorted(delivery.undecodable))} could not be read, and a copy without "
            f"them would not be the message; {out['replayed']} replayed before it, nothing "
            "after it was published"
        )
    headers = {k: v for k, v in delivery.properties.headers.items() if k != OFFSET_HEADER}
    headers[REPLAYED_FROM] = args.name
    headers[REPLAYED_OFFSET] = offset
    properties = builder.copy(delivery.properties, headers=headers)
    routing_key = args.routing_key if args.routing_key is not None else delivery.routing_key
    try:
        await transport.publish(
            args.to, routing_key, delivery.body, properties, mandatory=True, timeout=30.0
        )
    except BurrowError as exc:
        raise _Stopped(
            f"replay stopped at offset {offset} of stream {args.name!r}: {exc}; "
            f"{out['replayed']} replayed before it, "
            f"nothing after it was published"
        ) from None
    if out["first_offset"] is None:
        out["first_offset"] = offset
    out["last_offset"] = offset
    out["replayed"] += 1
    if args.verbose and not args.json:
        print(f"  {offset}: to {args.to!r} / {routing_key!r}")


async def _cmd_replay(args: argparse.Namespace) -> int:
    out: dict[str, Any] = {
        "stream": args.name,
        "exchange": args.to,
        "replayed": 0,
        "first_offset": None,
        "last_offset": None,
        "end_offset": None,
        "stopped_by": None,
        "error": None,
    }
    try:
        await _replay(args, out)
    except _Stopped as exc:
        out["error"] = str(exc)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        if out["replayed"]:
            span = f" (offsets {out['first_offset']} .. {out['last_offset']})"
        else:
            span = ""
        print(f"{args.name}: {out['replayed']} replayed to {args.to!r}{span}")
    return EXIT_OK if out["error"] is None else fail(out["error"])


# -- registration ------------------------------------------------------------------------


def add_stream_commands(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> argparse.ArgumentParser:
    """Add the ``stream`` command group to the CLI's subcommands.

    Args:
        commands: the ``add_subparsers()`` object of the ``burrowmq`` parser.
        parents: parsers whose options every subcommand also accepts (logging).

    Returns:
        The ``stream`` parser.
    """
    stream = CommandGroup(
        commands,
        "stream",
        "look at a stream, and re-drive it",
        subject=("name", "the stream"),
        json_help="print one JSON object",
        parents=parents,
    )
    info = stream.add(
        "info",
        "the size, first and last offset, consumers and stored marks of the stream NAME",
        _cmd_info,
    )
    info.add_argument(
        "--consumer",
        action="append",
        metavar="NAME",
        help="also read this named consumer's mark (repeat; found on its own through the "
        "management API)",
    )
    info.add_argument(
        "--management-url",
        help="management API, http(s)://[user:password@]host:port "
        "(default: $BURROWMQ_MANAGEMENT_URL, else the broker's host, port 15672)",
    )
    replay = stream.add(
        "replay",
        "publish the messages of stream NAME from an offset or a time to EXCHANGE, confirmed",
        _cmd_replay,
    )
    replay.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="OFFSET|TIME",
        help="an offset, 'first', or an ISO-8601 time with a zone",
    )
    replay.add_argument(
        "--to", required=True, metavar="EXCHANGE", help="the exchange ('' for the default one)"
    )
    replay.add_argument(
        "--routing-key", "-k", help="publish with this key (default: each message's own)"
    )
    replay.add_argument(
        "--until",
        metavar="OFFSET|TIME",
        help="stop after this offset, or before the first message stored at this time "
        "(default: the last offset when the replay starts)",
    )
    replay.add_argument("--limit", type=int, help="replay at most this many")
    replay.add_argument("--verbose", "-v", action="store_true", help="a line per message")
    return stream.parser
