"""AMQP 0-9-1 routing semantics, exactly as RabbitMQ implements them, as pure functions.

This is the one implementation behind the in-memory transport and `burrowmq topology
route`; `tests/integration/test_matching_broker.py` and the differential test hold it
against a real broker (RabbitMQ 3.10.8 and 4.0.5).

Headers matching changed in RabbitMQ 3.13; `Rules` names the two rule sets:
`Rules.RABBITMQ_4` (3.13 and 4.x, the default) and `Rules.RABBITMQ_3` (3.10 to 3.12);
`rules_for("3.10")` picks one from a version. Everything else is the same in both.

Behaviours worth knowing (each checked on RabbitMQ 3.10.8 and 4.0.5):

- Topic keys split on ".", and the empty key has *zero* words: `*` does not match "",
  `#` does, the pattern "" matches only the key "". "." is two empty words; `*` matches
  an empty word. `*` and `#` are special only as whole words ("a*" is a literal).
- Headers values compare on what the wire carried, in both rule sets: True equals
  neither 1 nor "true", a str equals a bytearray with the same UTF-8 bytes, integers
  compare by value whatever width pamqp gave them, a Decimal equals only a Decimal with
  the same scale and digits ("1.0" is not "1.00"), and an empty dict equals an empty
  list. Inside lists and dicts the AMQP type counts too ([1] is not [1.0]; even an
  integer's width, which pamqp picks from the value, so equal ints agree), and
  timestamps there stay in seconds. Floats are sent as 64-bit doubles, so they compare at
  full precision. A binding value of None (AMQP void) matches on the key's presence
  alone. A timestamp *binding* value is its epoch seconds.
- Where the rule sets differ (RabbitMQ's rabbit_exchange_type_headers.erl, and from 3.13
  mc_amqpl.erl's routing_headers):
  - Equality. 3.x compares with Erlang `==`: 1 equals 1.0, 0.0 equals -0.0. 4.x compares
    with `=:=`: an integer never equals a float (1 is not 1.0, 2**53 is not 2.0**53),
    and 0.0 is not -0.0 (Erlang 27, which the 4.0.5 broker runs; Erlang 26 equates them),
    at the top level and inside lists and dicts.
  - Timestamp headers. 3.x sees a timestamp header as its epoch seconds, so a datetime
    equals the int of its seconds. 4.x sees a top-level timestamp header in epoch
    *milliseconds* while binding values stay as sent: a datetime header matches the int
    binding of its milliseconds (or a datetime binding whose seconds are those
    milliseconds), and a datetime binding never matches the same datetime (except the
    epoch itself, 0 = 0 * 1000).
- "all"/"any" ignore every binding key starting with "x-"; "all-with-x"/"any-with-x"
  consider them, except "x-match" itself. "all" with nothing to compare matches every
  message, "any" none.
- An exchange's alternate exchange is tried only when the exchange's own bindings matched
  nothing at all, queues or exchanges: a match on an exchange that routes nowhere does not
  count as nothing. Each exchange is visited at most once per publish, which ends cycles.
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import enum
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, Literal, TypeAlias

from burrowmq.framework import vocabulary

TopicMatcher: TypeAlias = Callable[[str], bool]
HeadersMatcher: TypeAlias = Callable[[Mapping[str, Any] | None], bool]


# -- the rules of a RabbitMQ version ----------------------------------------------------


class Rules(enum.Enum):
    """The headers-matching rules of a line of RabbitMQ releases; the value names it.

    Only headers exchanges differ; see the module docstring for what each rule means.
    """

    RABBITMQ_3 = "RabbitMQ 3.x (3.10 to 3.12)"
    """Erlang `==`: 1 equals 1.0; timestamp headers in seconds."""
    RABBITMQ_4 = "RabbitMQ 4.x (and 3.13)"
    """Erlang `=:=`: 1 is not 1.0, 0.0 is not -0.0; timestamp headers in milliseconds."""

    @property
    def exact_equality(self) -> bool:
        """Whether values compare with `=:=` (no int equals a float, 0.0 is not -0.0)."""
        return self is Rules.RABBITMQ_4

    @property
    def header_timestamp_scale(self) -> int:
        """What a top-level timestamp header's epoch seconds are multiplied by: 1 or 1000."""
        return 1000 if self is Rules.RABBITMQ_4 else 1


DEFAULT_RULES: Final = Rules.RABBITMQ_4
"""The rules used when none are given: RabbitMQ 4.x's."""

_VERSION: Final = re.compile(r"(\d+)(?:\.(\d+))?(?:\.\d+)*(?:[-+~][0-9A-Za-z.+~-]*)?")


def rules_for(version: str) -> Rules:
    """The headers-matching rules of a RabbitMQ version.

    Args:
        version: "MAJOR.MINOR[.PATCH]", as RabbitMQ announces it ("3.10.8", "4.0.5",
            "4.1.0-rc.1") or shortened ("3.10", "4"). 3.10 to 3.12 give
            `Rules.RABBITMQ_3`; 3.13 and every later version `Rules.RABBITMQ_4`.

    Returns:
        The rules.

    Raises:
        ValueError: Not a version, a 3 without its minor version (3.13 already follows
            the 4.x rules), or a version older than 3.10.
    """
    found = _VERSION.fullmatch(version.strip())
    if found is None:
        raise ValueError(
            f"{version!r} is not a RabbitMQ version; expected MAJOR.MINOR, e.g. '3.10' or '4.0'"
        )
    major, minor = int(found[1]), None if found[2] is None else int(found[2])
    if major >= 4 or (major == 3 and minor is not None and minor >= 13):
        return Rules.RABBITMQ_4
    if major == 3 and minor is None:
        raise ValueError(
            f"{version!r} is ambiguous: 3.13 matches headers as 4.x does; give the minor "
            "version, e.g. '3.10'"
        )
    if major == 3 and minor is not None and minor >= 10:
        return Rules.RABBITMQ_3
    raise ValueError(f"RabbitMQ {version} is older than 3.10, the oldest burrowmq supports")


# -- direct and fanout ------------------------------------------------------------------


def direct_matches(binding_key: str, routing_key: str) -> bool:
    """Tell whether a direct exchange binding matches a routing key.

    Args:
        binding_key: The binding's routing key.
        routing_key: The message's routing key.

    Returns:
        True when the two keys are equal, character for character.
    """
    return binding_key == routing_key


def fanout_matches(binding_key: str, routing_key: str) -> bool:
    """Tell whether a fanout exchange binding matches: it always does.

    Args:
        binding_key: The binding's routing key, ignored.
        routing_key: The message's routing key, ignored.

    Returns:
        True.
    """
    return True


# -- topic ------------------------------------------------------------------------------


def _words(key: str) -> tuple[str, ...]:
    # RabbitMQ's split_topic_key turns <<>> into [] rather than [<<>>].
    return tuple(key.split(".")) if key else ()


class _TopicTrie:
    """Topic binding keys in a trie of words, as RabbitMQ keeps them, matched all at once.

    Matching walks (node, words consumed) states, each at most once: a dynamic program
    linear in trie size x key length, with no backtracking whatever the patterns.
    """

    __slots__ = ("children", "greedy", "values")

    def __init__(self, *, greedy: bool = False) -> None:
        self.children: dict[str, _TopicTrie] = {}
        self.greedy = greedy  # entered through a "#" edge, so it may eat more words
        self.values: list[Any] = []

    def add(self, pattern: str, value: Any) -> None:
        node = self
        for word in _words(pattern):
            if not (word == "#" and node.greedy):  # "#.#" is "#"
                node = node.children.setdefault(word, _TopicTrie(greedy=word == "#"))
        node.values.append(value)

    def match(self, routing_key: str) -> list[Any]:
        words = _words(routing_key)
        found: list[Any] = []
        seen: set[tuple[int, int]] = set()
        pending: list[tuple[_TopicTrie, int]] = [(self, 0)]
        while pending:
            node, done = pending.pop()
            if (id(node), done) in seen:
                continue
            seen.add((id(node), done))
            if (hashed := node.children.get("#")) is not None:
                pending.append((hashed, done))  # "#" matching zero words
            if done == len(words):
                found += node.values
                continue
            if node.greedy:
                pending.append((node, done + 1))
            for edge in (words[done], "*"):
                if (child := node.children.get(edge)) is not None:
                    pending.append((child, done + 1))
        return found


@lru_cache(maxsize=4096)
def compile_topic(pattern: str) -> TopicMatcher:
    """Compile a topic binding key into a matcher; results are cached per pattern.

    Args:
        pattern: A topic binding key such as "order.*.placed" or "audit.#".

    Returns:
        A function of a routing key that tells whether the pattern matches it.
    """
    if "*" not in pattern and "#" not in pattern:
        return lambda key: key == pattern
    trie = _TopicTrie()
    trie.add(pattern, True)
    return lambda key: bool(trie.match(key))


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Tell whether a topic binding key matches a routing key, as RabbitMQ does.

    Args:
        pattern: The binding key: "."-separated words, where `*` stands for exactly
            one word and `#` for zero or more.
        routing_key: The message's routing key.

    Returns:
        True when the message would be routed through this binding.
    """
    return compile_topic(pattern)(routing_key)


# -- headers ----------------------------------------------------------------------------

# Header values are turned into the Erlang terms RabbitMQ compares (`==` on 3.x, `=:=`
# on 4.x), after pamqp encoded them: binaries become bytes, atoms (true, false,
# undefined, type tags) str, Erlang lists Python lists and Erlang tuples Python tuples.
# At the top level only the value counts; inside arrays and tables each value carries
# its AMQP type. Python's `==` is Erlang's `==`, so for `=:=` a float becomes a tagged
# tuple that no int equals (`_float`).

_Term: TypeAlias = Any
_PRESENT: Final = object()  # a void binding value: the key need only be present


def _decimal(value: decimal.Decimal) -> tuple[int, int]:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise TypeError(f"cannot send {value} as an AMQP decimal")
    if exponent > 0:
        return (0, int(value))
    return (-exponent, int(value.scaleb(-exponent)))


def _float(value: float, rules: Rules) -> _Term:
    """A double as the rules compare it: by value (`==`), or as a float, sign included."""
    if rules.exact_equality:  # =:=: no int equals it, and 0.0 is not -0.0 (Erlang 27)
        return ("float", value, math.copysign(1.0, value))
    return value  # ==: 1.0 equals 1, and 0.0 equals -0.0


def _typed(value: object, rules: Rules) -> tuple[str, _Term]:
    """Return the (AMQP type, Erlang value) pair RabbitMQ decodes for a Python value."""
    if value is None:
        return ("void", "undefined")
    if isinstance(value, bool):
        return ("bool", "true" if value else "false")
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("double", _float(value, rules))  # burrowmq sends floats as doubles
    if isinstance(value, decimal.Decimal):
        return ("decimal", _decimal(value))
    if isinstance(value, str):
        return ("longstr", value.encode())
    if isinstance(value, bytes | bytearray | memoryview):
        return ("binary", bytes(value))
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=datetime.UTC)
        return ("timestamp", int(value.timestamp()))
    if isinstance(value, time.struct_time):
        return ("timestamp", calendar.timegm(value))
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return ("table", [(str(k).encode(), *_typed(v, rules)) for k, v in items])
    if isinstance(value, list | tuple):
        return ("array", [_typed(v, rules) for v in value])
    raise TypeError(f"{type(value).__name__} is not an AMQP field value: {value!r}")


def _typed_header(key: str, value: object, rules: Rules) -> tuple[str, _Term]:
    try:
        return _typed(value, rules)
    except TypeError as exc:
        raise TypeError(f"header {key!r}: {exc}") from None


def _binding_term(key: str, value: object, rules: Rules) -> _Term:
    """A binding value as RabbitMQ keeps it: as sent, a timestamp in seconds."""
    return _PRESENT if value is None else _typed_header(key, value, rules)[1]


def _header_term(key: str, value: object, rules: Rules) -> _Term:
    """A message header's value as the exchange routes on it."""
    kind, term = _typed_header(key, value, rules)
    if kind == "timestamp":  # 4.x (3.13 on) routes on a top-level timestamp in milliseconds
        return term * rules.header_timestamp_scale
    return term


@dataclass(frozen=True, slots=True)
class _HeadersBinding:
    every: bool  # "all" rather than "any"
    wanted: tuple[tuple[str, _Term], ...]
    rules: Rules

    def __call__(self, headers: Mapping[str, Any] | None) -> bool:
        return self.hit(_terms(headers, self.rules))

    def hit(self, terms: Mapping[str, _Term]) -> bool:
        found = (key in terms and (t is _PRESENT or terms[key] == t) for key, t in self.wanted)
        return all(found) if self.every else any(found)


def _terms(headers: Mapping[str, Any] | None, rules: Rules) -> dict[str, _Term]:
    return {key: _header_term(key, value, rules) for key, value in (headers or {}).items()}


def _compile_headers(binding_args: Mapping[str, Any], rules: Rules) -> _HeadersBinding:
    mode = binding_args.get("x-match", "all")
    if not isinstance(mode, str) or mode not in vocabulary.X_MATCH_MODES:
        raise ValueError(
            f"invalid x-match {mode!r}; expected 'all', 'any', 'all-with-x' or 'any-with-x'"
        )
    with_x = mode.endswith("-with-x")
    wanted = tuple(
        (key, _binding_term(key, value, rules))
        for key, value in binding_args.items()
        if key != "x-match" and (with_x or not key.startswith("x-"))
    )
    return _HeadersBinding(mode.startswith("all"), wanted, rules)


def compile_headers(
    binding_args: Mapping[str, Any], *, rules: Rules = DEFAULT_RULES
) -> HeadersMatcher:
    """Compile a headers exchange binding's arguments into a matcher of message headers.

    Args:
        binding_args: The binding arguments: "x-match" ("all" when absent, "any",
            "all-with-x" or "any-with-x") and the header keys and values to match.
            A value of None (AMQP void) matches on the key's presence alone.
        rules: Whose comparisons to follow; RabbitMQ 4.x's by default.

    Returns:
        A function of the message headers (None for none) that tells whether the
        binding matches them.

    Raises:
        ValueError: "x-match" is not one of the four modes; RabbitMQ refuses such a
            binding with 406 PRECONDITION_FAILED.
        TypeError: A value is not one AMQP can carry.
    """
    return _compile_headers(binding_args, rules)


def headers_match(
    binding_args: Mapping[str, Any],
    headers: Mapping[str, Any] | None,
    *,
    rules: Rules = DEFAULT_RULES,
) -> bool:
    """Tell whether a headers exchange binding matches a message's headers.

    Args:
        binding_args: The binding arguments, with "x-match" and the values to match;
            see `compile_headers`.
        headers: The message headers, or None when it has none.
        rules: Whose comparisons to follow; RabbitMQ 4.x's by default.

    Returns:
        True when the message would be routed through this binding.

    Raises:
        ValueError: "x-match" is not one of the four modes.
        TypeError: A value is not one AMQP can carry.
    """
    return compile_headers(binding_args, rules=rules)(headers)


# -- the routing graph ------------------------------------------------------------------


def _label(binding: BindingSpec) -> str:
    return f"binding {binding.source!r} -> {binding.destination_type} {binding.destination!r}"


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """An exchange as routing sees it.

    Attributes:
        name: The exchange name; never "" (the default exchange is implied).
        type: "direct", "fanout", "topic" or "headers".
        alternate_exchange: The "alternate-exchange" argument or policy, if any.

    Raises:
        ValueError: The type is not one of the vocabulary's exchange types (RabbitMQ answers 503).
    """

    name: str
    type: str
    alternate_exchange: str | None = None

    def __post_init__(self) -> None:
        if self.type not in vocabulary.EXCHANGE_TYPES:
            raise ValueError(
                f"exchange {self.name!r} has unknown type {self.type!r}; "
                f"expected one of {', '.join(sorted(vocabulary.EXCHANGE_TYPES))}"
            )


@dataclass(frozen=True, slots=True)
class BindingSpec:
    """A binding from an exchange to a queue or to another exchange.

    Attributes:
        source: The exchange bound from.
        destination: The queue or exchange bound to.
        destination_type: "queue" or "exchange".
        routing_key: The binding key: a literal (direct) or a pattern (topic).
        arguments: The binding arguments; headers exchanges match on them.

    Raises:
        ValueError: destination_type is neither "queue" nor "exchange".
    """

    source: str
    destination: str
    destination_type: Literal["queue", "exchange"] = "queue"
    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.destination_type not in ("queue", "exchange"):
            raise ValueError(f"{_label(self)}: destination_type must be 'queue' or 'exchange'")


STANDARD_EXCHANGES: Final = tuple(
    ExchangeSpec(name, kind) for name, kind in sorted(vocabulary.STANDARD_EXCHANGES.items())
)
"""The exchanges every RabbitMQ virtual host has; add them to a graph that uses them."""


_Destination: TypeAlias = tuple[str, str]  # (destination_type, name)
_Router: TypeAlias = Callable[[str, Mapping[str, Any] | None], Sequence[_Destination]]


def _router(kind: str, bindings: list[BindingSpec], rules: Rules) -> _Router:
    """Index one exchange's bindings for its type, so that a publish does little work."""
    if kind == "headers":
        matchers: list[tuple[_HeadersBinding, _Destination]] = []
        for b in bindings:
            try:
                matchers.append(
                    (_compile_headers(b.arguments, rules), (b.destination_type, b.destination))
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{_label(b)}: {exc}") from None

        def by_headers(key: str, headers: Mapping[str, Any] | None) -> list[_Destination]:
            terms = _terms(headers, rules)  # once per publish, not once per binding
            return [d for binding, d in matchers if binding.hit(terms)]

        return by_headers
    by_key: dict[str, list[_Destination]] = {}
    for b in bindings:
        by_key.setdefault(b.routing_key, []).append((b.destination_type, b.destination))
    if kind == "direct":
        return lambda key, headers: by_key.get(key, ())
    if kind == "fanout":
        every = [d for ds in by_key.values() for d in ds]
        return lambda key, headers: every
    trie = _TopicTrie()
    for pattern, dests in by_key.items():
        trie.add(pattern, dests)
    return lambda key, headers: [d for dests in trie.match(key) for d in dests]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingGraph:
    """Exchanges, queues and the bindings between them, indexed for `route`.

    The default exchange "" is implied and cannot be listed, bound from or bound to.
    A binding's source and destination must be in the graph, as RabbitMQ refuses a
    binding to what does not exist and drops the bindings of what it deletes.

    Attributes:
        exchanges: The exchanges, other than the default one.
        bindings: The bindings between them and to the queues.
        queues: The names of the queues.
        rules: The headers-matching rules `route` follows unless told otherwise;
            RabbitMQ 4.x's by default.

    Raises:
        ValueError: An exchange is listed twice or named "", a binding refers to an
            exchange or queue that is not in the graph, or a headers binding has an
            invalid x-match.
    """

    exchanges: tuple[ExchangeSpec, ...] = ()
    bindings: tuple[BindingSpec, ...] = ()
    queues: frozenset[str] = frozenset()
    rules: Rules = DEFAULT_RULES
    _routers: dict[Rules, dict[str, _Router]] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, ExchangeSpec] = field(init=False, repr=False, compare=False)
    _grouped: dict[str, list[BindingSpec]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exchanges", tuple(self.exchanges))
        object.__setattr__(self, "bindings", tuple(self.bindings))
        object.__setattr__(self, "queues", frozenset(self.queues))
        by_name: dict[str, ExchangeSpec] = {}
        for exchange in self.exchanges:
            if exchange.name == "":
                raise ValueError("exchange '' is the default exchange, implied in every graph")
            if exchange.name in by_name:
                raise ValueError(f"exchange {exchange.name!r} is listed twice")
            by_name[exchange.name] = exchange
        grouped: dict[str, list[BindingSpec]] = {name: [] for name in by_name}
        for b in self.bindings:
            if b.source not in by_name:
                raise ValueError(f"{_label(b)}: no exchange {b.source!r} in the graph")
            known = by_name if b.destination_type == "exchange" else self.queues
            if b.destination not in known:
                raise ValueError(f"{_label(b)}: no such {b.destination_type} in the graph")
            grouped[b.source].append(b)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_grouped", grouped)
        object.__setattr__(self, "_routers", {})
        self._routing(self.rules)  # compiled now, so that a bad binding is refused now

    def _routing(self, rules: Rules) -> dict[str, _Router]:
        """The exchanges' routers under ``rules``, compiled on first use."""
        routers = self._routers.get(rules)
        if routers is None:
            routers = self._routers[rules] = {
                name: _router(self._by_name[name].type, group, rules)
                for name, group in self._grouped.items()
            }
        return routers


def route(
    graph: RoutingGraph,
    exchange: str,
    routing_key: str,
    headers: Mapping[str, Any] | None = None,
    *,
    rules: Rules | None = None,
) -> set[str]:
    """Return the queues a message published to an exchange reaches, as RabbitMQ routes it.

    Follows exchange-to-exchange bindings and alternate exchanges, visiting each exchange
    at most once. An exchange's alternate exchange is tried only when its own bindings
    matched nothing; an alternate exchange missing from the graph is ignored, as RabbitMQ
    ignores it. The default exchange "" routes to the queue named by the routing key.

    Args:
        graph: The exchanges, queues and bindings.
        exchange: The exchange published to; "" for the default exchange.
        routing_key: The message's routing key.
        headers: The message's headers, or None when it has none.
        rules: The headers-matching rules to follow; None for the graph's own
            (RabbitMQ 4.x's unless the graph was built with others).

    Returns:
        The names of the queues that receive a copy; empty when the message is
        unroutable (with `mandatory` it would be returned).

    Raises:
        ValueError: The exchange is not in the graph (RabbitMQ closes the channel with
            404 NOT_FOUND).
    """
    if exchange == "":
        return {routing_key} if routing_key in graph.queues else set()
    if exchange not in graph._by_name:
        raise ValueError(f"no exchange {exchange!r} in the routing graph")
    routers = graph._routing(graph.rules if rules is None else rules)
    queues: set[str] = set()
    seen = {exchange}
    pending = [exchange]
    while pending:
        name = pending.pop()
        destinations = routers[name](routing_key, headers)
        alternate = graph._by_name[name].alternate_exchange
        if not destinations and alternate is not None:
            destinations = (("exchange", alternate),)
        for kind, target in destinations:
            if kind == "queue":
                queues.add(target)
            elif target not in seen and target in graph._by_name:
                seen.add(target)
                pending.append(target)
    return queues
