"""Tests for topology graphs in Mermaid and Graphviz dot."""

from __future__ import annotations

import re

import pytest

from burrowmq import Binding, Exchange, Queue, Topology
from burrowmq.topology.graph import render_graph

pytestmark = pytest.mark.unit

TOPOLOGY = Topology(
    exchanges=[
        Exchange(name="orders", type="topic", arguments={"alternate-exchange": "unrouted"}),
        Exchange(name="unrouted", type="fanout"),
        Exchange(name="docs", type="headers"),
        Exchange(name="audit.dlx", type="fanout"),
    ],
    queues=[
        Queue(name="audit", arguments={"x-dead-letter-exchange": "audit.dlx"}),
        Queue(name="audit.dlq", type="quorum"),
        Queue(name="pdf"),
    ],
    bindings=[
        Binding(source="orders", destination="audit", routing_key="order.*.placed"),
        Binding(source="audit.dlx", destination="audit.dlq"),
        Binding(source="docs", destination="pdf", arguments={"x-match": "all", "format": "pdf"}),
    ],
)


def _ids(text: str, label: str) -> str:
    match = re.search(r"(\w+)\W+\"" + re.escape(label), text)
    assert match, f"{label!r} not drawn"
    return match.group(1)


class TestMermaid:
    """Mermaid output: shapes per kind, labelled bindings, dashed failure paths."""

    def test_nodes_and_bindings(self) -> None:
        """Exchanges are hexagons with their type, queues cylinders, bindings labelled."""
        text = render_graph(TOPOLOGY)
        assert text.startswith("flowchart LR\n")
        assert '{{"orders<br/>topic"}}' in text
        assert '[("audit.dlq<br/>quorum")]' in text
        orders, audit = _ids(text, "orders<br/>"), _ids(text, "audit<br/>")
        assert f'{orders} -->|"order.*.placed"| {audit}' in text

    def test_failure_paths_are_dashed(self) -> None:
        """Dead-letter and alternate exchanges are dashed arrows with a reason."""
        text = render_graph(TOPOLOGY)
        audit, dlx = _ids(text, "audit<br/>"), _ids(text, "audit.dlx<br/>")
        assert f'{audit} -.->|"dead letters"| {dlx}' in text
        orders, unrouted = _ids(text, "orders<br/>"), _ids(text, "unrouted<br/>")
        assert f'{orders} -.->|"unroutable"| {unrouted}' in text

    def test_headers_and_fanout_labels(self) -> None:
        """Headers bindings show their match; fanout bindings have no label."""
        text = render_graph(TOPOLOGY)
        assert '|"all: format=pdf"|' in text
        dlx, dlq = _ids(text, "audit.dlx<br/>"), _ids(text, "audit.dlq<br/>")
        assert f"{dlx} --> {dlq}" in text

    def test_handlers_and_labels(self) -> None:
        """Handlers hang off their queue; labels replace queue names."""
        text = render_graph(
            TOPOLOGY, consumers={"audit": ["app.audit()"]}, labels={"audit": "audit <x>"}
        )
        handler = _ids(text, "app.audit()")
        assert '(["app.audit()"])' in text
        assert "audit #lt;x#gt;" in text
        assert re.search(rf"\w+ --> {handler}\n", text)


class TestDot:
    """Graphviz output is a digraph with escaped labels."""

    def test_digraph(self) -> None:
        """Nodes carry shapes; failure paths are dashed; quotes are escaped."""
        topology = Topology(
            exchanges=[Exchange(name='we"ird', type="direct")],
            queues=[Queue(name="q")],
            bindings=[Binding(source='we"ird', destination="q", routing_key="k")],
        )
        text = render_graph(topology, format="dot")
        assert text.startswith("digraph topology {")
        assert 'label="we\\"ird\\ndirect", shape=hexagon' in text
        assert '-> q1 [label="k"];' in text
        assert "style=dashed" in render_graph(TOPOLOGY, format="dot")
