"""Routing semantics of burrowmq.framework.matching, table by table.

Every row of TOPIC_CASES, HEADERS_CASES, INVALID_X_MATCH and ROUTE_CASES was observed on
RabbitMQ 3.10.8, 4.0.5 or both, as its row says: each HEADERS_CASES and ROUTE_CASES row
names the rules it holds for (ON_3: `Rules.RABBITMQ_3`, 3.10 to 3.12; ON_4:
`Rules.RABBITMQ_4`, 3.13 and 4.x; BOTH), and the topic and x-match tables hold for both.
tests/integration/test_matching_broker.py replays these same tables against the real
broker with the rows of its version's rules, so a row added here is checked there too.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from burrowmq.cli import main
from burrowmq.framework.matching import (
    DEFAULT_RULES,
    STANDARD_EXCHANGES,
    BindingSpec,
    ExchangeSpec,
    RoutingGraph,
    Rules,
    compile_headers,
    compile_topic,
    direct_matches,
    fanout_matches,
    headers_match,
    route,
    rules_for,
    topic_matches,
)

pytestmark = pytest.mark.unit

# (pattern, routing key, routed?)
TOPIC_CASES: list[tuple[str, str, bool]] = [
    # the empty key has zero words
    ("", "", True),
    ("", ".", False),
    ("", "a", False),
    ("*", "", False),
    ("#", "", True),
    ("#.#", "", True),
    ("#.#.#", "", True),
    ("#.*", "", False),
    ("*.#", "", False),
    # "." is two empty words, and an empty word is a word
    (".", ".", True),
    (".", "", False),
    ("*", ".", False),
    ("*.*", ".", True),
    ("#", ".", True),
    ("#.*", ".", True),
    ("a.", "a.", True),
    ("a.", "a", False),
    (".a", ".a", True),
    ("*.*", "a.", True),
    ("a.*", "a.", True),
    ("a.*", "a", False),
    ("a.#", "a.", True),
    ("a.*.b", "a..b", True),
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("a.#.#.b", "a..b", True),
    # literals
    ("a", "a", True),
    ("a", "A", False),
    ("a", "a.b", False),
    ("a.b", "a", False),
    ("a.b", "a.*", False),
    ("é.*", "é.x", True),
    # * and # are special only as whole words
    ("a*", "a*", True),
    ("a*", "ab", False),
    ("a#", "a", False),
    ("a#", "a.b", False),
    ("*", "*", True),
    ("*", "#", True),
    ("#", "#", True),
    # * is exactly one word
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.*", "a", False),
    ("*.*", "a.b.c", False),
    ("a.*", "a.b", True),
    ("a.*", "a.b.c", False),
    ("*.b", "a.b", True),
    ("*.b", "b", False),
    # # is zero or more words
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#.#", "a", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", ".a", False),
    ("a.#", "ab", False),
    ("#.b", "b", True),
    ("#.b", "a.b", True),
    ("#.b", "a.b.c", False),
    ("#.*", "a", True),
    ("#.*", "a.b.c", True),
    ("*.#", "a", True),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
    ("#.a.*", "a.", True),
    ("#.a.*", "x.a.b", True),
    ("#.a.*", "a.b.c", False),
    ("#.a.*", "a", False),
    ("a.#.#.b", "a.b", True),
    ("a.#.#.b", "a.x.y.b", True),
    ("a.#.#.b", "a.b.c", False),
    ("a.#.b", "a.b.b.b", True),
    ("a.#.b.#.c", "a.b.c", True),
    ("a.#.b.#.c", "a.x.b.y.z.c", True),
    ("a.#.b.#.c", "a.c.b", False),
    ("order.*.placed", "order.eu.placed", True),
    ("order.*.placed", "order.placed", False),
    ("order.#.cancelled", "order.cancelled", True),
    ("order.#.cancelled", "order.eu.fr.cancelled", True),
]

V3, V4 = Rules.RABBITMQ_3, Rules.RABBITMQ_4
ON_3: frozenset[Rules] = frozenset({V3})  # observed on RabbitMQ 3.10.8
ON_4: frozenset[Rules] = frozenset({V4})  # observed on RabbitMQ 4.0.5
BOTH: frozenset[Rules] = frozenset(Rules)  # observed on both

DT = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
DT_SECONDS = 1577836800
DT_MS = DT_SECONDS * 1000
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
SECOND_1 = datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.UTC)
SECOND_1000 = datetime.datetime(1970, 1, 1, 0, 16, 40, tzinfo=datetime.UTC)
ALL_A1: dict[str, Any] = {"x-match": "all", "a": 1}
ALL_AB: dict[str, Any] = {"x-match": "all", "a": 1, "b": 2}
ANY_AB: dict[str, Any] = {"x-match": "any", "a": 1, "b": 2}
ALL_X: dict[str, Any] = {"x-match": "all-with-x", "x-k": "v"}
ANY_X: dict[str, Any] = {"x-match": "any-with-x", "x-k": "v"}
ALL_XA: dict[str, Any] = {"x-match": "all-with-x", "x-k": "v", "a": 1}
ANY_XA: dict[str, Any] = {"x-match": "any-with-x", "x-k": "v", "a": 1}


def a(value: Any, mode: str = "all") -> dict[str, Any]:
    """Binding arguments matching header "a" against value."""
    return {"x-match": mode, "a": value}


# (binding arguments, message headers, routed?, the rules it holds for); every value here
# is one pamqp can send. Where 3.x and 4.x differ, a pair has one row for each.
HEADERS_CASES: list[tuple[dict[str, Any], dict[str, Any] | None, bool, frozenset[Rules]]] = [
    # all
    (ALL_A1, {"a": 1}, True, BOTH),
    (ALL_A1, {"a": 2}, False, BOTH),
    (ALL_A1, None, False, BOTH),
    (ALL_A1, {}, False, BOTH),
    (ALL_A1, {"A": 1}, False, BOTH),
    (ALL_A1, {"a": 1, "x-match": "any"}, True, BOTH),
    (ALL_AB, {"a": 1, "b": 2}, True, BOTH),
    (ALL_AB, {"a": 1, "b": 2, "c": 3}, True, BOTH),
    (ALL_AB, {"a": 1, "b": 3}, False, BOTH),
    (ALL_AB, {"a": 1}, False, BOTH),
    ({"x-match": "all"}, None, True, BOTH),
    ({"x-match": "all"}, {"b": 2}, True, BOTH),
    ({"x-match": "all", "x-k": "v"}, None, True, BOTH),
    ({"x-match": "all", "x-k": "v"}, {"x-k": "w"}, True, BOTH),
    ({"x-match": "all", "X-k": "v"}, {}, False, BOTH),
    ({"x-match": "all", "X-k": "v"}, {"X-k": "v"}, True, BOTH),
    # x-match absent means all
    ({"a": 1}, {"a": 1}, True, BOTH),
    ({"a": 1}, {"a": 2}, False, BOTH),
    ({}, None, True, BOTH),
    ({}, {"a": 1}, True, BOTH),
    # any
    (ANY_AB, {"a": 1, "b": 3}, True, BOTH),
    (ANY_AB, {"b": 2}, True, BOTH),
    (ANY_AB, {"a": 2, "b": 3}, False, BOTH),
    (ANY_AB, {"c": 3}, False, BOTH),
    (ANY_AB, None, False, BOTH),
    ({"x-match": "any"}, None, False, BOTH),
    ({"x-match": "any"}, {"a": 1}, False, BOTH),
    ({"x-match": "any", "x-k": "v"}, {"x-k": "v"}, False, BOTH),
    # all-with-x: x- keys count, x-match itself does not
    (ALL_X, {"x-k": "v"}, True, BOTH),
    (ALL_X, {"x-k": "w"}, False, BOTH),
    (ALL_X, {}, False, BOTH),
    (ALL_XA, {"a": 1}, False, BOTH),
    (ALL_XA, {"a": 1, "x-k": "v"}, True, BOTH),
    ({"x-match": "all-with-x"}, None, True, BOTH),
    # any-with-x: x- keys count, x-match itself does not
    (ANY_X, {"x-k": "v"}, True, BOTH),
    (ANY_X, {"x-match": "any-with-x"}, False, BOTH),
    (ANY_X, None, False, BOTH),
    (ANY_XA, {"a": 1}, True, BOTH),
    (ANY_XA, {"a": 2, "x-k": "w"}, False, BOTH),
    ({"x-match": "any-with-x"}, {"x-k": "v"}, False, BOTH),
    ({"x-match": "any-with-x", "x-match2": "all"}, {"x-match2": "all"}, True, BOTH),
    # void binding values match on presence
    (a(None), {"a": 0}, True, BOTH),
    (a(None), {"a": False}, True, BOTH),
    (a(None), {"a": None}, True, BOTH),
    (a(None), {"a": ""}, True, BOTH),
    (a(None), {}, False, BOTH),
    (a(None), None, False, BOTH),
    ({"x-match": "any", "a": None, "b": 1}, {"a": "x"}, True, BOTH),
    ({"x-match": "any", "a": None, "b": 1}, {"c": "x"}, False, BOTH),
    (a("x"), {"a": None}, False, BOTH),
    # 3.x compares numbers by value across int and float (Erlang ==), 4.x never equates
    # an int and a float (=:=); neither equates a number with a bool or a str
    (a(1), {"a": 1.0}, True, ON_3),
    (a(1), {"a": 1.0}, False, ON_4),
    (a(1.0), {"a": 1}, True, ON_3),
    (a(1.0), {"a": 1}, False, ON_4),
    (a(-1), {"a": -1.0}, True, ON_3),
    (a(-1), {"a": -1.0}, False, ON_4),
    (a(100000), {"a": 100000.0}, True, ON_3),
    (a(100000), {"a": 100000.0}, False, ON_4),
    (a(0), {"a": 0.0}, True, ON_3),
    (a(0), {"a": 0.0}, False, ON_4),
    (a(2**53), {"a": 2.0**53}, True, ON_3),
    (a(2**53), {"a": 2.0**53}, False, ON_4),
    (a(2**53 + 1), {"a": 2.0**53}, False, BOTH),
    (a(1.0), {"a": 1.0}, True, BOTH),
    (a(300), {"a": 300}, True, BOTH),
    (a(-(2**63)), {"a": -(2**63)}, True, BOTH),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 1.0}, True, ON_3),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 1.0}, False, ON_4),
    ({"x-match": "all-with-x", "x-n": 2}, {"x-n": 2.0}, True, ON_3),
    ({"x-match": "all-with-x", "x-n": 2}, {"x-n": 2.0}, False, ON_4),
    # 0.0 and -0.0: equal to ==, not to =:= on Erlang 27 (the 4.0.5 broker's)
    (a(0.0), {"a": -0.0}, True, ON_3),
    (a(0.0), {"a": -0.0}, False, ON_4),
    (a(-0.0), {"a": -0.0}, True, BOTH),
    (a(1), {"a": "1"}, False, BOTH),
    (a(1), {"a": True}, False, BOTH),
    (a(True), {"a": 1}, False, BOTH),
    (a(True), {"a": True}, True, BOTH),
    (a(True), {"a": "true"}, False, BOTH),
    (a(False), {"a": 0}, False, BOTH),
    (a(0), {"a": False}, False, BOTH),
    (a(False), {"a": False}, True, BOTH),
    # floats travel as 64-bit doubles: full precision
    (a(0.1), {"a": 0.1}, True, BOTH),
    (a(16777217.0), {"a": 16777217}, True, ON_3),
    (a(16777217.0), {"a": 16777217}, False, ON_4),
    (a(16777217.0), {"a": 16777217.0}, True, BOTH),
    (a(16777217.0), {"a": 16777216}, False, BOTH),
    # strings and byte arrays are both binaries
    (a("1"), {"a": bytearray(b"1")}, True, BOTH),
    (a(bytearray(b"1")), {"a": "1"}, True, BOTH),
    (a("é"), {"a": bytearray("é".encode())}, True, BOTH),
    (a("é"), {"a": "é"}, True, BOTH),
    (a(""), {"a": ""}, True, BOTH),
    (a(""), {}, False, BOTH),
    ({"x-match": "all", "": "e"}, {"": "e"}, True, BOTH),
    # a timestamp binding value is its epoch seconds; a timestamp header is its epoch
    # seconds on 3.x, its epoch milliseconds on 4.x
    (a(DT), {"a": DT_SECONDS}, True, BOTH),
    (a(DT), {"a": DT_SECONDS + 1}, False, BOTH),
    (a(DT), {"a": DT_MS}, False, BOTH),
    (a(DT), {"a": DT}, True, ON_3),
    (a(DT), {"a": DT}, False, ON_4),
    (a(DT_SECONDS), {"a": DT}, True, ON_3),
    (a(DT_SECONDS), {"a": DT}, False, ON_4),
    (a(DT_MS), {"a": DT}, False, ON_3),
    (a(DT_MS), {"a": DT}, True, ON_4),
    (a(float(DT_SECONDS)), {"a": DT}, True, ON_3),
    (a(float(DT_SECONDS)), {"a": DT}, False, ON_4),
    (a(float(DT_MS)), {"a": DT}, False, BOTH),
    (a(SECOND_1000), {"a": SECOND_1}, False, ON_3),
    (a(SECOND_1000), {"a": SECOND_1}, True, ON_4),
    (a(SECOND_1), {"a": SECOND_1}, True, ON_3),
    (a(SECOND_1), {"a": SECOND_1}, False, ON_4),
    (a(EPOCH), {"a": EPOCH}, True, BOTH),
    (a(0), {"a": EPOCH}, True, BOTH),
    (a(EPOCH), {"a": 0}, True, BOTH),
    ({"x-match": "all-with-x", "x-t": DT_MS}, {"x-t": DT}, False, ON_3),
    ({"x-match": "all-with-x", "x-t": DT_MS}, {"x-t": DT}, True, ON_4),
    (a(None), {"a": DT}, True, BOTH),
    # a decimal is its (scale, digits)
    (a(Decimal("1.0")), {"a": Decimal("1.0")}, True, BOTH),
    (a(Decimal("1.0")), {"a": Decimal("1.00")}, False, BOTH),
    (a(Decimal("1.0")), {"a": Decimal("1")}, False, BOTH),
    (a(Decimal("1.0")), {"a": 1}, False, BOTH),
    (a(Decimal("1E+2")), {"a": Decimal("100")}, True, BOTH),
    (a(Decimal("1")), {"a": 1.0}, False, BOTH),
    # inside arrays and tables the type counts as well as the value
    (a([1, 2]), {"a": [1, 2]}, True, BOTH),
    (a([1, 2]), {"a": [2, 1]}, False, BOTH),
    (a([1, 2]), {"a": [1.0, 2]}, False, BOTH),
    (a([1.0]), {"a": [1.0]}, True, BOTH),
    (a([0.0]), {"a": [-0.0]}, True, ON_3),
    (a([0.0]), {"a": [-0.0]}, False, ON_4),
    (a(["1"]), {"a": ["1"]}, True, BOTH),
    (a(["1"]), {"a": [bytearray(b"1")]}, False, BOTH),
    (a([None]), {"a": [None]}, True, BOTH),
    (a([DT]), {"a": [DT]}, True, BOTH),
    (a([DT]), {"a": [DT_SECONDS]}, False, BOTH),
    (a([DT_MS]), {"a": [DT]}, False, BOTH),
    (a({"p": DT}), {"a": {"p": DT}}, True, BOTH),
    (a({"p": 1, "q": "r"}), {"a": {"q": "r", "p": 1}}, True, BOTH),
    (a({"p": 1, "q": "r"}), {"a": {"p": 1.0, "q": "r"}}, False, BOTH),
    (a({"p": 1}), {"a": [1]}, False, BOTH),
    # an empty table and an empty array are the same empty list to RabbitMQ
    (a({}), {"a": {}}, True, BOTH),
    (a({}), {"a": []}, True, BOTH),
    (a([]), {"a": {}}, True, BOTH),
    (a([]), {"a": [None]}, False, BOTH),
]

# x-match values RabbitMQ refuses at bind time with 406 PRECONDITION_FAILED
INVALID_X_MATCH: list[Any] = ["none", "ALL", "", "all ", 1, None, bytearray(b"all")]


class Scenario(NamedTuple):
    """A topology, one publish into it and the queues the message reaches."""

    id: str
    exchanges: tuple[ExchangeSpec, ...]
    bindings: tuple[BindingSpec, ...]
    queues: tuple[str, ...]
    exchange: str
    routing_key: str
    headers: dict[str, Any] | None
    expected: frozenset[str]
    holds_for: frozenset[Rules]

    def graph(self, rules: Rules = DEFAULT_RULES) -> RoutingGraph:
        """Build the RoutingGraph of this scenario."""
        return RoutingGraph(
            exchanges=self.exchanges,
            bindings=self.bindings,
            queues=frozenset(self.queues),
            rules=rules,
        )


def x(name: str, kind: str, ae: str | None = None) -> ExchangeSpec:
    """Shorthand for an exchange."""
    return ExchangeSpec(name, kind, ae)


def to_q(source: str, queue: str, key: str = "", **args: Any) -> BindingSpec:
    """Shorthand for a binding to a queue."""
    return BindingSpec(source, queue, "queue", key, args)


def to_x(source: str, destination: str, key: str = "") -> BindingSpec:
    """Shorthand for an exchange-to-exchange binding."""
    return BindingSpec(source, destination, "exchange", key)


def scenario(
    id: str,
    exchanges: list[ExchangeSpec],
    bindings: list[BindingSpec],
    queues: list[str],
    publish: tuple[str, str, dict[str, Any] | None],
    expected: set[str],
    holds_for: frozenset[Rules] = BOTH,
) -> Scenario:
    """Shorthand for a Scenario; it holds for both rule sets unless told otherwise."""
    return Scenario(
        id,
        tuple(exchanges),
        tuple(bindings),
        tuple(queues),
        *publish,
        frozenset(expected),
        holds_for,
    )


ROUTE_CASES: list[Scenario] = [
    scenario(
        "direct-hit",
        [x("X", "direct")],
        [to_q("X", "q1", "k"), to_q("X", "q2", "other")],
        ["q1", "q2"],
        ("X", "k", None),
        {"q1"},
    ),
    scenario(
        "direct-miss", [x("X", "direct")], [to_q("X", "q1", "k")], ["q1"], ("X", "K", None), set()
    ),
    scenario(
        "fanout-all",
        [x("X", "fanout")],
        [to_q("X", "q1", "a"), to_q("X", "q2", "b")],
        ["q1", "q2"],
        ("X", "zzz", None),
        {"q1", "q2"},
    ),
    scenario(
        "topic-two-patterns-one-queue",
        [x("X", "topic")],
        [to_q("X", "q1", "a.*"), to_q("X", "q1", "#.b"), to_q("X", "q2", "c")],
        ["q1", "q2"],
        ("X", "a.b", None),
        {"q1"},
    ),
    scenario(
        "topic-to-headers",
        [x("X", "topic"), x("H", "headers")],
        [
            to_x("X", "H", "a.#"),
            BindingSpec("H", "pdf", "queue", "", {"x-match": "any", "f": "pdf"}),
            BindingSpec("H", "doc", "queue", "", {"x-match": "any", "f": "doc"}),
        ],
        ["pdf", "doc"],
        ("X", "a.b", {"f": "pdf"}),
        {"pdf"},
    ),
    scenario(
        "e2e-cycle",
        [x("X", "fanout"), x("Y", "fanout")],
        [to_x("X", "Y"), to_x("Y", "X"), to_q("Y", "qy")],
        ["qy"],
        ("X", "k", None),
        {"qy"},
    ),
    scenario(
        "e2e-diamond",
        [x("X", "fanout"), x("Y", "fanout"), x("Z", "fanout")],
        [to_x("X", "Y"), to_x("X", "Z"), to_q("Y", "q"), to_q("Z", "q")],
        ["q"],
        ("X", "k", None),
        {"q"},
    ),
    scenario(
        "e2e-self-binding-suppresses-ae",
        [x("X", "fanout", "A"), x("A", "fanout")],
        [to_x("X", "X"), to_q("A", "qa")],
        ["qa"],
        ("X", "k", None),
        set(),
    ),
    scenario(
        "e2e-to-empty-exchange-suppresses-ae",
        [x("X", "direct", "A"), x("Y", "fanout"), x("A", "fanout")],
        [to_x("X", "Y", "k"), to_q("A", "qa")],
        ["qa"],
        ("X", "k", None),
        set(),
    ),
    scenario(
        "e2e-destination-uses-its-own-ae",
        [x("X", "direct", "A"), x("Y", "fanout", "B"), x("A", "fanout"), x("B", "fanout")],
        [to_x("X", "Y", "k"), to_q("A", "qa"), to_q("B", "qb")],
        ["qa", "qb"],
        ("X", "k", None),
        {"qb"},
    ),
    scenario(
        "ae-when-nothing-matched",
        [x("X", "direct", "A"), x("A", "fanout")],
        [to_q("X", "qx", "k"), to_q("A", "qa")],
        ["qx", "qa"],
        ("X", "other", None),
        {"qa"},
    ),
    scenario(
        "ae-not-used-when-matched",
        [x("X", "direct", "A"), x("A", "fanout")],
        [to_q("X", "qx", "k"), to_q("A", "qa")],
        ["qx", "qa"],
        ("X", "k", None),
        {"qx"},
    ),
    scenario(
        "ae-chain",
        [x("X", "direct", "A"), x("A", "direct", "B"), x("B", "fanout")],
        [to_q("A", "qa", "zz"), to_q("B", "qb")],
        ["qa", "qb"],
        ("X", "k", None),
        {"qb"},
    ),
    scenario(
        "ae-routes-by-its-own-type",
        [x("X", "direct", "A"), x("A", "topic")],
        [to_q("A", "qa", "*.b"), to_q("A", "qc", "#.c")],
        ["qa", "qc"],
        ("X", "a.b", None),
        {"qa"},
    ),
    scenario(
        "ae-cycle",
        [x("X", "direct", "A"), x("A", "direct", "X")],
        [to_q("A", "qa", "zz")],
        ["qa"],
        ("X", "k", None),
        set(),
    ),
    scenario("ae-missing", [x("X", "direct", "nope")], [], ["qa"], ("X", "k", None), set()),
    scenario("ae-default-exchange", [x("X", "direct", "")], [], ["q1"], ("X", "q1", None), set()),
    scenario(
        "ae-of-headers-exchange",
        [x("H", "headers", "A"), x("A", "fanout")],
        [BindingSpec("H", "qh", "queue", "", {"f": "pdf"}), to_q("A", "qa")],
        ["qh", "qa"],
        ("H", "", {"f": "doc"}),
        {"qa"},
    ),
    scenario(
        "queue-and-empty-exchange-with-ae",
        [x("X", "fanout"), x("Y", "direct", "B"), x("B", "fanout")],
        [to_x("X", "Y"), to_q("X", "qx"), to_q("B", "qb")],
        ["qx", "qb"],
        ("X", "k", None),
        {"qx", "qb"},
    ),
    *(
        scenario(
            f"headers-{what}-on-{version}",
            [x("H", "headers", "A"), x("A", "fanout")],
            [BindingSpec("H", "qh", "queue", "", {"v": bound}), to_q("A", "qa")],
            ["qh", "qa"],
            ("H", "", {"v": sent}),
            reached,
            holds_for,
        )
        for what, bound, sent, version, reached, holds_for in [
            ("int-vs-double", 1, 1.0, 3, {"qh"}, ON_3),
            ("int-vs-double", 1, 1.0, 4, {"qa"}, ON_4),
            ("ms-vs-timestamp", DT_MS, DT, 3, {"qa"}, ON_3),
            ("ms-vs-timestamp", DT_MS, DT, 4, {"qh"}, ON_4),
        ]
    ),
    scenario("default-exchange-hit", [], [], ["q1", "q2"], ("", "q1", None), {"q1"}),
    scenario("default-exchange-miss", [], [], ["q1"], ("", "q2", None), set()),
]


class TestDirectAndFanout:
    @pytest.mark.parametrize(
        ("binding_key", "routing_key", "expected"),
        [("k", "k", True), ("k", "K", False), ("", "", True), ("a.b", "a.*", False)],
    )
    def test_direct_matches_equal_keys_only(
        self, binding_key: str, routing_key: str, expected: bool
    ) -> None:
        """A direct binding matches exactly the routing key equal to its own."""
        assert direct_matches(binding_key, routing_key) is expected

    @pytest.mark.parametrize(("binding_key", "routing_key"), [("", ""), ("a", "b"), ("#", "")])
    def test_fanout_matches_everything(self, binding_key: str, routing_key: str) -> None:
        """A fanout binding matches whatever the keys."""
        assert fanout_matches(binding_key, routing_key) is True


class TestTopic:
    @pytest.mark.parametrize(("pattern", "routing_key", "expected"), TOPIC_CASES)
    def test_table(self, pattern: str, routing_key: str, expected: bool) -> None:
        """topic_matches agrees with what RabbitMQ did for each row."""
        assert topic_matches(pattern, routing_key) is expected

    @pytest.mark.parametrize(("pattern", "routing_key", "expected"), TOPIC_CASES)
    def test_compiled_agrees(self, pattern: str, routing_key: str, expected: bool) -> None:
        """A compiled matcher gives the same answer as topic_matches."""
        assert compile_topic(pattern)(routing_key) is expected

    def test_compiled_matchers_are_cached(self) -> None:
        """Compiling the same pattern twice returns the same matcher."""
        assert compile_topic("cache.*.#") is compile_topic("cache.*.#")

    @pytest.mark.timeout(5)
    def test_no_backtracking_blowup(self) -> None:
        """A pattern of many hashes against a long non-matching key answers at once."""
        pattern = ".".join(["#", "a"] * 30) + ".b"
        key = ".".join(["a"] * 200)
        started = time.perf_counter()
        assert topic_matches(pattern, key) is False
        assert topic_matches(pattern, key + ".b") is True
        assert time.perf_counter() - started < 1.0


def reference_topic(pattern: list[str], words: list[str]) -> bool:
    """The definition of topic matching by plain recursion: exponential, obviously right."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(reference_topic(rest, words[skip:]) for skip in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and reference_topic(rest, words[1:])


def split(key: str) -> list[str]:
    """Words of a key as RabbitMQ splits them: the empty key has none."""
    return key.split(".") if key else []


topic_keys = st.lists(st.sampled_from(["a", "b", ""]), max_size=6).map(".".join)
topic_patterns = st.lists(st.sampled_from(["a", "b", "", "*", "#"]), max_size=6).map(".".join)


class TestTopicProperties:
    @settings(max_examples=500, deadline=None)
    @given(pattern=topic_patterns, key=topic_keys)
    def test_agrees_with_the_definition(self, pattern: str, key: str) -> None:
        """topic_matches agrees with the recursive definition on small generated cases."""
        assert topic_matches(pattern, key) is reference_topic(split(pattern), split(key))

    @settings(max_examples=200, deadline=None)
    @given(patterns=st.lists(topic_patterns, min_size=1, max_size=8), key=topic_keys)
    def test_exchange_trie_agrees_with_each_pattern(self, patterns: list[str], key: str) -> None:
        """A topic exchange routes to exactly the bindings whose pattern matches alone."""
        queues = [f"q{i}" for i in range(len(patterns))]
        graph = RoutingGraph(
            exchanges=(x("T", "topic"),),
            bindings=tuple(to_q("T", q, p) for q, p in zip(queues, patterns, strict=True)),
            queues=frozenset(queues),
        )
        expected = {q for q, p in zip(queues, patterns, strict=True) if topic_matches(p, key)}
        assert route(graph, "T", key) == expected

    def test_exchange_trie_agrees_on_the_table(self) -> None:
        """One exchange bound with every pattern of the table routes each key as the table says."""
        patterns = sorted({pattern for pattern, _, _ in TOPIC_CASES})
        queues = {f"q{i}": pattern for i, pattern in enumerate(patterns)}
        graph = RoutingGraph(
            exchanges=(x("T", "topic"),),
            bindings=tuple(to_q("T", q, p) for q, p in queues.items()),
            queues=frozenset(queues),
        )
        for key in {key for _, key, _ in TOPIC_CASES}:
            expected = {q for q, p in queues.items() if topic_matches(p, key)}
            assert route(graph, "T", key) == expected, key


def by_rules(
    cases: list[tuple[dict[str, Any], dict[str, Any] | None, bool, frozenset[Rules]]],
) -> list[Any]:
    """One pytest param per (rules, row): each row once for every rule set it holds for."""
    return [
        pytest.param(rules, args, headers, expected, id=f"{rules.name}-{number}")
        for number, (args, headers, expected, holds_for) in enumerate(cases)
        for rules in Rules
        if rules in holds_for
    ]


# values pamqp cannot send as such, which matching still takes as their AMQP kin
KIN_CASES: list[tuple[dict[str, Any], dict[str, Any] | None, bool, frozenset[Rules]]] = [
    (a("1"), {"a": b"1"}, True, BOTH),
    (a(b"1"), {"a": "1"}, True, BOTH),
    (a([1, 2]), {"a": (1, 2)}, True, BOTH),
    (a(DT), {"a": time.gmtime(DT_SECONDS)}, True, ON_3),
    (a(DT), {"a": time.gmtime(DT_SECONDS)}, False, ON_4),
    (a(DT_MS), {"a": time.gmtime(DT_SECONDS)}, True, ON_4),
    (a(DT.replace(tzinfo=None)), {"a": DT_SECONDS}, True, BOTH),
    (a(DT_MS), {"a": DT.replace(tzinfo=None)}, True, ON_4),
]


class TestHeaders:
    @pytest.mark.parametrize(
        ("rules", "binding_args", "headers", "expected"), by_rules(HEADERS_CASES)
    )
    def test_table(
        self,
        rules: Rules,
        binding_args: dict[str, Any],
        headers: dict[str, Any] | None,
        expected: bool,
    ) -> None:
        """headers_match agrees with what RabbitMQ of the row's version did."""
        assert headers_match(binding_args, headers, rules=rules) is expected
        assert compile_headers(binding_args, rules=rules)(headers) is expected

    def test_every_pair_has_one_answer_per_rule_set(self) -> None:
        """Each (binding, headers) pair of the table is answered once for 3.x and once for 4.x."""
        answers: dict[tuple[str, str, Rules], list[bool]] = {}
        for args, headers, expected, holds_for in HEADERS_CASES:
            for rules in holds_for:
                answers.setdefault((repr(args), repr(headers), rules), []).append(expected)
        pairs = {(args, headers) for args, headers, _ in answers}
        missing = [(p, r) for p in pairs for r in Rules if (*p, r) not in answers]
        twice = [(key, found) for key, found in answers.items() if len(found) > 1]
        assert (missing, twice) == ([], [])

    def test_default_rules_are_rabbitmq_4(self) -> None:
        """Without rules=, headers compare as RabbitMQ 4.x does: 1 is not 1.0."""
        assert DEFAULT_RULES is V4
        assert headers_match(a(1), {"a": 1.0}) is False
        assert compile_headers(a(DT_MS))({"a": DT}) is True

    @pytest.mark.parametrize(("rules", "binding_args", "headers", "expected"), by_rules(KIN_CASES))
    def test_values_pamqp_cannot_send(
        self, rules: Rules, binding_args: dict[str, Any], headers: dict[str, Any], expected: bool
    ) -> None:
        """bytes, tuples, struct_time and naive datetimes compare as their AMQP kin."""
        assert headers_match(binding_args, headers, rules=rules) is expected

    @pytest.mark.parametrize("mode", INVALID_X_MATCH)
    def test_invalid_x_match_is_refused(self, mode: Any) -> None:
        """An x-match outside the four modes raises ValueError naming it."""
        with pytest.raises(ValueError, match="invalid x-match"):
            compile_headers({"x-match": mode, "a": 1})

    def test_unsupported_value_type_names_the_key(self) -> None:
        """A header value AMQP cannot carry raises TypeError naming the header."""
        with pytest.raises(TypeError, match="'a'"):
            headers_match(a(1), {"a": object()})


ROUTE_PARAMS = [
    pytest.param(case, rules, id=f"{case.id}-{rules.name}")
    for case in ROUTE_CASES
    for rules in Rules
    if rules in case.holds_for
]


class TestRoute:
    @pytest.mark.parametrize(("case", "rules"), ROUTE_PARAMS)
    def test_table(self, case: Scenario, rules: Rules) -> None:
        """route reaches the queues RabbitMQ delivered to for each scenario."""
        graph = case.graph(rules)
        assert route(graph, case.exchange, case.routing_key, case.headers) == case.expected

    @pytest.mark.parametrize(("case", "rules"), ROUTE_PARAMS)
    def test_rules_keyword_overrides_the_graph(self, case: Scenario, rules: Rules) -> None:
        """route(rules=...) routes a graph built with the other rules as those rules say."""
        other = next(r for r in Rules if r is not rules)
        found = route(case.graph(other), case.exchange, case.routing_key, case.headers, rules=rules)
        assert found == case.expected

    def test_graph_rules_default_to_rabbitmq_4(self) -> None:
        """A RoutingGraph without rules= routes headers as RabbitMQ 4.x does."""
        graph = RoutingGraph(
            exchanges=(x("H", "headers"),), bindings=(to_q("H", "q", n=1),), queues=frozenset("q")
        )
        assert graph.rules is V4
        assert route(graph, "H", "", {"n": 1.0}) == set()
        assert route(graph, "H", "", {"n": 1.0}, rules=V3) == {"q"}

    def test_unknown_exchange_is_named(self) -> None:
        """Publishing to an exchange not in the graph raises ValueError naming it."""
        with pytest.raises(ValueError, match="'missing'"):
            route(RoutingGraph(), "missing", "k", None)

    def test_standard_exchanges_route_when_added(self) -> None:
        """The amq.* exchanges route like any other once added to the graph."""
        graph = RoutingGraph(
            exchanges=STANDARD_EXCHANGES,
            bindings=(to_q("amq.topic", "q", "a.#"), to_q("amq.match", "q", f="pdf")),
            queues=frozenset({"q"}),
        )
        assert route(graph, "amq.topic", "a.b") == {"q"}
        assert route(graph, "amq.match", "", {"f": "pdf"}) == {"q"}
        assert route(graph, "amq.direct", "q") == set()


class TestRules:
    """The two rule sets, their named differences and how a version picks one."""

    @pytest.mark.parametrize(
        ("rules", "exact_equality", "header_timestamp_scale"),
        [(V3, False, 1), (V4, True, 1000)],
    )
    def test_the_differences(
        self, rules: Rules, exact_equality: bool, header_timestamp_scale: int
    ) -> None:
        """3.x compares with ==, timestamps in seconds; 4.x with =:=, headers in ms."""
        assert rules.exact_equality is exact_equality
        assert rules.header_timestamp_scale == header_timestamp_scale

    @pytest.mark.parametrize(
        ("version", "rules"),
        [
            ("3.10", V3),
            ("3.10.8", V3),
            ("3.11.28", V3),
            ("3.12.14", V3),
            ("3.13", V4),
            ("3.13.7", V4),
            ("4", V4),
            ("4.0", V4),
            ("4.0.5", V4),
            (" 4.0.5 ", V4),
            ("4.1.0-rc.1", V4),
            ("4.2.0+1.gabcdef", V4),
            ("10.0", V4),
        ],
    )
    def test_rules_for(self, version: str, rules: Rules) -> None:
        """3.10 to 3.12 follow the 3.x rules; 3.13 (message containers) and later 4.x's."""
        assert rules_for(version) is rules

    @pytest.mark.parametrize(
        ("version", "message"),
        [
            ("", "not a RabbitMQ version"),
            ("four", "not a RabbitMQ version"),
            ("4.x", "not a RabbitMQ version"),
            ("v4.0", "not a RabbitMQ version"),
            ("3.10a", "not a RabbitMQ version"),
            ("3", "ambiguous"),
            ("3.9.29", "older than 3.10"),
            ("2.8", "older than 3.10"),
        ],
    )
    def test_rules_for_refuses(self, version: str, message: str) -> None:
        """What is not a version of 3.10 or later raises ValueError saying why."""
        with pytest.raises(ValueError, match=message):
            rules_for(version)


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """Undo the structlog configuration main() installs (it binds capsys's stream)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("_restore_logging")
class TestTopologyRouteRules:
    """`burrowmq topology route --rabbitmq VERSION` routes with that version's rules."""

    TOPOLOGY = (
        "exchanges: [{name: docs, type: headers}]\n"
        "queues: [{name: pdf}]\n"
        "bindings: [{source: docs, destination: pdf, arguments: {x-match: all, copies: 2}}]\n"
    )

    @pytest.mark.parametrize(
        ("options", "status", "rules"),
        [
            ([], 1, V4),
            (["--rabbitmq", "4.0"], 1, V4),
            (["--rabbitmq", "3.13"], 1, V4),
            (["--rabbitmq", "3.10"], 0, V3),
            (["--rabbitmq", "3.12.14"], 0, V3),
        ],
    )
    def test_float_header_against_int_binding(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        options: list[str],
        status: int,
        rules: Rules,
    ) -> None:
        """copies=2.0 reaches a binding of copies: 2 on 3.x only; stderr names the rules."""
        path = tmp_path / "topology.yaml"
        path.write_text(self.TOPOLOGY, encoding="utf-8")
        argv = ["topology", "route", str(path), "docs", "", "--header", "copies=2.0"]
        assert main([*argv, *options]) == status
        out, err = capsys.readouterr()
        assert out.split() == (["pdf"] if status == 0 else [])
        assert f"rules: {rules.value}" in err

    def test_bad_version_is_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A --rabbitmq that is not a version exits 2 with argparse's message."""
        path = tmp_path / "topology.yaml"
        path.write_text(self.TOPOLOGY, encoding="utf-8")
        with pytest.raises(SystemExit) as exit_info:
            main(["topology", "route", str(path), "docs", "", "--rabbitmq", "3.x"])
        assert exit_info.value.code == 2
        assert "--rabbitmq: '3.x' is not a RabbitMQ version" in capsys.readouterr().err


class TestGraph:
    def test_unknown_exchange_type_names_exchange_and_type(self) -> None:
        """An exchange of a type routing does not know raises ValueError naming both."""
        with pytest.raises(ValueError, match=r"'delayed'.*'x-delayed-message'"):
            ExchangeSpec("delayed", "x-delayed-message")

    @pytest.mark.parametrize(
        ("exchanges", "bindings", "queues", "message"),
        [
            ((x("X", "direct"), x("X", "topic")), (), (), "'X' is listed twice"),
            ((x("", "direct"),), (), (), "default exchange"),
            ((), (to_q("", "q"),), ("q",), "no exchange ''"),
            ((x("X", "direct"),), (to_q("X", "q"),), (), "no such queue"),
            ((x("X", "direct"),), (to_x("X", "Y"),), (), "no such exchange"),
            (
                (x("H", "headers"),),
                (BindingSpec("H", "q", "queue", "", {"x-match": "none"}),),
                ("q",),
                "binding 'H' -> queue 'q': invalid x-match",
            ),
        ],
    )
    def test_inconsistent_graph_is_refused(
        self,
        exchanges: tuple[ExchangeSpec, ...],
        bindings: tuple[BindingSpec, ...],
        queues: tuple[str, ...],
        message: str,
    ) -> None:
        """A graph RabbitMQ could not hold raises ValueError saying what is wrong."""
        with pytest.raises(ValueError, match=message):
            RoutingGraph(exchanges=exchanges, bindings=bindings, queues=frozenset(queues))

    def test_bad_destination_type_is_refused(self) -> None:
        """A binding to something neither queue nor exchange raises ValueError."""
        with pytest.raises(ValueError, match="destination_type"):
            BindingSpec("X", "q", "stream", "")  # type: ignore[arg-type]

    def test_headers_args_outside_headers_exchanges_are_ignored(self) -> None:
        """An invalid x-match on a topic binding is accepted, as RabbitMQ accepts it."""
        graph = RoutingGraph(
            exchanges=(x("T", "topic"),),
            bindings=(to_q("T", "q", "a", **{"x-match": "none"}),),
            queues=frozenset({"q"}),
        )
        assert route(graph, "T", "a") == {"q"}
