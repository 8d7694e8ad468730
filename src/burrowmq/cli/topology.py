"""The ``burrowmq topology`` commands: validate, plan, apply, export, graph, route.

Each command takes a topology file (YAML, or a definitions export in JSON) or an App as
``module:attribute``, whose topology is its YAML merged with what its routes declare.
``--vhost NAME`` picks the virtual host of a file whose entities name several (an export
of a whole broker). Warnings go to stderr; errors make the exit status 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from burrowmq.cli.connection import add_tls_options, tls_of
from burrowmq.cli.exits import EXIT_FAILURE, EXIT_OK
from burrowmq.exceptions import ConfigurationError, TopologyError, TopologyProblem
from burrowmq.framework.matching import (
    DEFAULT_RULES,
    STANDARD_EXCHANGES,
    BindingSpec,
    ExchangeSpec,
    RoutingGraph,
    Rules,
    route,
    rules_for,
)
from burrowmq.framework.tls import tls_context
from burrowmq.framework.urls import MEMORY_SCHEME, default_urls, vhost_of
from burrowmq.topology.export import export_topology
from burrowmq.topology.graph import render_graph
from burrowmq.topology.loader import read_topology
from burrowmq.topology.model import Topology

__all__ = ["add_topology_commands", "routing_graph"]

_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(slots=True)
class _Source:
    """A topology with what the commands show beside it."""

    topology: Topology
    warnings: tuple[TopologyProblem, ...] = ()
    consumers: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    vhost: str | None = None  # the vhost an App's URL names


def _load(target: str, vhost: str | None = None) -> _Source:
    path = Path(target)
    if path.suffix in _FILE_SUFFIXES or path.exists() or ":" not in target:
        loaded = read_topology(path, vhost=vhost)
        return _Source(loaded.topology, loaded.warnings)
    from burrowmq.cli.run import load_app

    app = load_app(target)
    urls = app.config.urls
    amqp = urls and not urls[0].startswith(f"{MEMORY_SCHEME}:")
    source = _Source(app.topology(), vhost=vhost_of(urls[0]) if amqp else None)
    for item in app.routes:
        queue = item.queue_name(app.instance_id)
        source.consumers.setdefault(queue, []).append(f"{item.name}()")
        if item.per_instance:
            source.labels[queue] = queue.replace(app.instance_id, "<instance>")
    return source


def _warn(source: _Source) -> None:
    for warning in source.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _url(args: argparse.Namespace) -> str:
    return args.url or default_urls(None)[0]


# -- validate ---------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        source = _load(args.target, args.vhost)
    except TopologyError as exc:
        if not exc.errors:
            raise
        for problem in exc.errors:
            print(problem, file=sys.stderr)
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return EXIT_FAILURE
    _warn(source)
    topology = source.topology
    print(
        f"{args.target}: valid: {len(topology.exchanges)} exchanges, "
        f"{len(topology.queues)} queues, {len(topology.bindings)} bindings, "
        f"{len(topology.policies)} policies"
        + (f", {len(source.warnings)} warning(s)" if source.warnings else "")
    )
    return EXIT_OK


# -- plan and apply ---------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from burrowmq.topology.management import ManagementClient

    return ManagementClient(_url(args), management_url=args.management_url, tls=tls_of(args))


async def _cmd_plan(args: argparse.Namespace) -> int:
    from burrowmq.topology.plan import read_plan

    source = _load(args.target, args.vhost)
    _warn(source)
    plan = await read_plan(source.topology, _client(args))
    print(plan.render())
    return EXIT_FAILURE if plan.conflicts else EXIT_OK


async def _cmd_apply(args: argparse.Namespace) -> int:
    from burrowmq.amqp.transport import AmqpTransport
    from burrowmq.topology.apply import apply_topology

    source = _load(args.target, args.vhost)
    _warn(source)
    client = None if args.no_management else _client(args)
    tls = tls_of(args)
    transport = AmqpTransport(
        [_url(args)],
        connection_name="burrowmq topology apply",
        ssl_context=tls_context(tls),
    )
    await transport.connect()
    try:
        report = await apply_topology(source.topology, transport, client=client)
    finally:
        await transport.close()
    print(report.render())
    return EXIT_OK


# -- export, graph, route ---------------------------------------------------------------


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {output}: {exc.strerror}") from None


def _cmd_export(args: argparse.Namespace) -> int:
    source = _load(args.target, args.vhost)
    _warn(source)
    vhost = args.vhost or source.vhost  # an App's URL names the vhost it declares into
    _write(export_topology(source.topology, format=args.format, vhost=vhost), args.output)
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    source = _load(args.target, args.vhost)
    _warn(source)
    text = render_graph(
        source.topology, format=args.format, consumers=source.consumers, labels=source.labels
    )
    _write(text, args.output)
    return EXIT_OK


def routing_graph(topology: Topology) -> RoutingGraph:
    """The routing view of a topology, for :func:`burrowmq.framework.matching.route`.

    Alternate exchanges come from the ``alternate-exchange`` argument or, failing that,
    from the policy of highest priority whose pattern matches the exchange. The
    exchanges every virtual host predeclares (``amq.*``) are included.

    Args:
        topology: the topology.

    Returns:
        The routing graph.

    Raises:
        TopologyError: an exchange has a type routing cannot follow (a plugin's).
    """
    policies = sorted(
        (p for p in topology.policies if p.apply_to in ("all", "exchanges")),
        key=lambda p: -p.priority,
    )
    exchanges: dict[str, ExchangeSpec] = {e.name: e for e in STANDARD_EXCHANGES}
    for exchange in topology.exchanges:
        alternate = exchange.arguments.get("alternate-exchange")
        if alternate is None:
            alternate = next(
                (
                    p.definition.get("alternate-exchange")
                    for p in policies
                    if "alternate-exchange" in p.definition and re.search(p.pattern, exchange.name)
                ),
                None,
            )
        try:
            exchanges[exchange.name] = ExchangeSpec(
                exchange.name, exchange.type, str(alternate) if alternate else None
            )
        except ValueError as exc:
            raise TopologyError(f"cannot route: {exc}", entity=exchange.describe()) from None
    bindings = tuple(
        BindingSpec(b.source, b.destination, b.destination_type, b.routing_key, b.arguments)
        for b in topology.bindings
    )
    try:
        return RoutingGraph(
            exchanges=tuple(exchanges.values()),
            bindings=bindings,
            queues=frozenset(q.name for q in topology.queues),
        )
    except ValueError as exc:
        raise TopologyError(f"cannot route: {exc}") from None


def _header(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ConfigurationError(f"--header takes name=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    if value is None or isinstance(value, dict | list):
        value = raw  # only scalars: numbers and booleans as YAML reads them, else text
    return name, value


def _rabbitmq_rules(version: str) -> Rules:
    try:
        return rules_for(version)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_route(args: argparse.Namespace) -> int:
    source = _load(args.target, args.vhost)
    _warn(source)
    headers: Mapping[str, Any] | None = dict(_header(h) for h in args.header or []) or None
    graph = routing_graph(source.topology)
    rules: Rules = args.rabbitmq
    try:
        queues = route(graph, args.exchange, args.routing_key, headers, rules=rules)
    except ValueError as exc:
        raise TopologyError(f"cannot route: {exc}") from None
    print(f"rules: {rules.value}", file=sys.stderr)  # stdout stays the list of queues
    if not queues:
        print(
            f"unroutable: nothing bound to exchange {args.exchange!r} takes routing key "
            f"{args.routing_key!r}" + (f" with headers {headers}" if headers else ""),
            file=sys.stderr,
        )
        return EXIT_FAILURE
    # A per-instance queue's name is drawn afresh by every process: show its pattern, as
    # graph does, rather than a name this process made up.
    for name in sorted(source.labels.get(q, q) for q in queues):
        print(name)
    return EXIT_OK


# -- registration -----------------------------------------------------------------------


def _broker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="broker URL (default: $BURROWMQ_URL or localhost)")
    parser.add_argument(
        "--management-url",
        help="management API, http(s)://[user:password@]host:port "
        "(default: $BURROWMQ_MANAGEMENT_URL, else the broker's host, port 15672)",
    )
    add_tls_options(parser)


def add_topology_commands(
    commands: Any, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """Register ``burrowmq topology ...`` on the CLI's subcommands.

    Args:
        commands: what ``ArgumentParser.add_subparsers()`` returned.
        parents: parsers whose options every subcommand also accepts (logging).
    """
    group = commands.add_parser(
        "topology", help="validate, plan, apply, export, draw and query a topology"
    )
    sub = group.add_subparsers(dest="topology_command", metavar="SUBCOMMAND")
    sub.required = True
    target_help = "a topology file (.yaml, .json definitions) or an App as module:attribute"
    vhost_help = "the virtual host to read from a file whose entities name several"

    validate = sub.add_parser(
        "validate", parents=list(parents), help="check a topology; exit 1 on any error"
    )
    validate.add_argument("target", help=target_help)
    validate.add_argument("--vhost", metavar="NAME", help=vhost_help)
    validate.set_defaults(handler=_cmd_validate)

    plan = sub.add_parser(
        "plan", parents=list(parents), help="compare with a live broker (management API)"
    )
    plan.add_argument("target", help=target_help)
    plan.add_argument("--vhost", metavar="NAME", help=vhost_help)
    _broker_options(plan)
    plan.set_defaults(handler=_cmd_plan)

    apply = sub.add_parser(
        "apply", parents=list(parents), help="declare on a live broker; never deletes anything"
    )
    apply.add_argument("target", help=target_help)
    apply.add_argument("--vhost", metavar="NAME", help=vhost_help)
    _broker_options(apply)
    apply.add_argument(
        "--no-management",
        action="store_true",
        help="declare over AMQP only (no policies, no created/present report)",
    )
    apply.set_defaults(handler=_cmd_apply)

    export = sub.add_parser(
        "export", parents=list(parents), help="write a topology as YAML or definitions JSON"
    )
    export.add_argument("target", help=target_help)
    export.add_argument("--format", choices=("yaml", "json"), default="yaml")
    export.add_argument(
        "--vhost",
        metavar="NAME",
        help=f"{vhost_help}, and the one written on every entity (JSON default: the "
        "vhost of the App's URL, else /)",
    )
    export.add_argument("-o", "--output", help="write to this file instead of stdout")
    export.set_defaults(handler=_cmd_export)

    graph = sub.add_parser(
        "graph", parents=list(parents), help="draw a topology as Mermaid or Graphviz dot"
    )
    graph.add_argument("target", help=target_help)
    graph.add_argument("--vhost", metavar="NAME", help=vhost_help)
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    graph.add_argument("-o", "--output", help="write to this file instead of stdout")
    graph.set_defaults(handler=_cmd_graph)

    where = sub.add_parser(
        "route", parents=list(parents), help="which queues a message would reach"
    )
    where.add_argument("target", help=target_help)
    where.add_argument("exchange", help='the exchange published to ("" for the default)')
    where.add_argument("routing_key", help="the message's routing key")
    where.add_argument("--vhost", metavar="NAME", help=vhost_help)
    where.add_argument(
        "--header",
        action="append",
        metavar="NAME=VALUE",
        help="a message header (repeatable); 3 and true read as number and boolean, "
        "quote to keep text: NAME='\"3\"'",
    )
    where.add_argument(
        "--rabbitmq",
        metavar="VERSION",
        type=_rabbitmq_rules,
        default=DEFAULT_RULES,
        help="match headers as this RabbitMQ version does (default: 4.x); before 3.13, "
        "1 equals 1.0 and timestamp headers are in seconds, not milliseconds",
    )
    where.set_defaults(handler=_cmd_route)
