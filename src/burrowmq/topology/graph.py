"""Graph: a topology drawn as Mermaid or Graphviz dot, to be read at a glance.

Exchanges are hexagons (with their type), queues are cylinders, handlers are rounded
boxes. Solid arrows are bindings, labelled with their routing key or header match;
dashed arrows are where messages go when things fail: a queue's dead-letter exchange,
an exchange's alternate exchange.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from burrowmq.topology.model import Binding, Topology

__all__ = ["GraphFormat", "render_graph"]

GraphFormat = Literal["mermaid", "dot"]


@dataclass(frozen=True, slots=True)
class _Node:
    id: str
    kind: Literal["exchange", "queue", "handler"]
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Edge:
    source: str
    target: str
    label: str
    dashed: bool = False


@dataclass(slots=True)
class _Picture:
    nodes: dict[tuple[str, str], _Node] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)

    def node(self, kind: Literal["exchange", "queue", "handler"], name: str, *lines: str) -> str:
        key = (kind, name)
        if key not in self.nodes:
            self.nodes[key] = _Node(f"{kind[0]}{len(self.nodes)}", kind, lines or (name,))
        return self.nodes[key].id


def _binding_label(binding: Binding, exchange_type: str | None) -> str:
    if exchange_type == "headers" or (binding.arguments and not binding.routing_key):
        match = binding.arguments.get("x-match", "all")
        pairs = [f"{k}={v}" for k, v in binding.arguments.items() if k != "x-match"]
        return f"{match}: {', '.join(pairs)}" if pairs else str(match)
    if exchange_type == "fanout":
        return ""
    return binding.routing_key or "(empty key)"


def _picture(
    topology: Topology,
    consumers: Mapping[str, Sequence[str]],
    labels: Mapping[str, str],
) -> _Picture:
    picture = _Picture()
    types = {e.name: e.type for e in topology.exchanges}

    def exchange(name: str) -> str:
        kind = types.get(name)
        return picture.node("exchange", name, name, kind or "(not declared here)")

    def queue(name: str) -> str:
        declared = topology.queue(name)
        lines = [labels.get(name, name)]
        if declared is not None:
            lines.append(declared.queue_type)
            if declared.exclusive:
                lines[-1] = "one per instance"
        return picture.node("queue", name, *lines)

    for item in topology.exchanges:
        exchange(item.name)
        alternate = item.arguments.get("alternate-exchange")
        if isinstance(alternate, str) and alternate:
            picture.edges.append(
                _Edge(exchange(item.name), exchange(alternate), "unroutable", True)
            )
    for declared_queue in topology.queues:
        queue(declared_queue.name)
    for binding in topology.bindings:
        source = exchange(binding.source)
        target = (
            exchange(binding.destination)
            if binding.destination_type == "exchange"
            else queue(binding.destination)
        )
        label = _binding_label(binding, types.get(binding.source))
        picture.edges.append(_Edge(source, target, label))
    for declared_queue in topology.queues:
        dead_letter = declared_queue.arguments.get("x-dead-letter-exchange")
        if isinstance(dead_letter, str) and dead_letter:
            key = declared_queue.arguments.get("x-dead-letter-routing-key")
            label = "dead letters" + (f" ({key})" if key else "")
            picture.edges.append(
                _Edge(queue(declared_queue.name), exchange(dead_letter), label, True)
            )
    for queue_name, handlers in consumers.items():
        for handler in handlers:
            target = picture.node("handler", handler, handler)
            picture.edges.append(_Edge(queue(queue_name), target, ""))
    return picture


def _mermaid_text(text: str) -> str:
    for raw, entity in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, entity)
    return text


def _mermaid(picture: _Picture) -> str:
    shapes = {"exchange": ("{{", "}}"), "queue": ("[(", ")]"), "handler": ("([", "])")}
    out = ["flowchart LR"]
    for node in picture.nodes.values():
        opening, closing = shapes[node.kind]
        label = "<br/>".join(_mermaid_text(line) for line in node.lines)
        out.append(f'    {node.id}{opening}"{label}"{closing}')
    for edge in picture.edges:
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        arrow = "-.->" if edge.dashed else "-->"
        out.append(f"    {edge.source} {arrow}{label} {edge.target}")
    classes = {
        "exchange": "fill:#fde8c8,stroke:#c77d00",
        "queue": "fill:#dbeafe,stroke:#1d4ed8",
        "handler": "fill:#dcfce7,stroke:#15803d",
    }
    for kind, style in classes.items():
        members = [n.id for n in picture.nodes.values() if n.kind == kind]
        if members:
            out.append(f"    classDef {kind} {style}")
            out.append(f"    class {','.join(members)} {kind}")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot(picture: _Picture) -> str:
    shapes = {
        "exchange": 'shape=hexagon, style=filled, fillcolor="#fde8c8"',
        "queue": 'shape=cylinder, style=filled, fillcolor="#dbeafe"',
        "handler": 'shape=box, style="rounded,filled", fillcolor="#dcfce7"',
    }
    out = ["digraph topology {", "    rankdir=LR;", '    node [fontname="Helvetica"];']
    for node in picture.nodes.values():
        label = "\\n".join(_dot_text(line) for line in node.lines)
        out.append(f'    {node.id} [label="{label}", {shapes[node.kind]}];')
    for edge in picture.edges:
        attributes = [f'label="{_dot_text(edge.label)}"'] if edge.label else []
        if edge.dashed:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        out.append(f"    {edge.source} -> {edge.target}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"


def render_graph(
    topology: Topology,
    *,
    format: GraphFormat = "mermaid",
    consumers: Mapping[str, Sequence[str]] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Draw a topology.

    Args:
        topology: the exchanges, queues, bindings (policies are not drawn).
        format: ``"mermaid"`` (renders on GitHub) or ``"dot"`` (Graphviz).
        consumers: handler names per queue name, drawn as boxes fed by their queue.
        labels: display names per queue name (e.g. a per-instance queue's pattern).

    Returns:
        The diagram's source text.
    """
    picture = _picture(topology, consumers or {}, labels or {})
    return _mermaid(picture) if format == "mermaid" else _dot(picture)
