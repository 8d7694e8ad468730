"""Routing-key parameters: parsing ``{name}`` words, matching and validating them."""

from __future__ import annotations

import enum
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burrowmq.exceptions import ConfigurationError, DecodeError
from burrowmq.framework.matching import topic_matches
from burrowmq.routing.key_pattern import KeyParameters, KeyPattern, parse_keys

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


class Level(str, enum.Enum):
    INFO = "info"
    ERROR = "error"


def plan(key: str, **types: Any) -> KeyParameters:
    pattern = KeyPattern.parse(key)
    return KeyParameters([pattern], {name: types.get(name, str) for name in pattern.names})


class TestParse:
    """``{name}`` words become ``*`` in the binding and named captures in the plan."""

    @pytest.mark.parametrize(
        ("key", "binding", "names"),
        [
            ("logs.{level}.#", "logs.*.#", ("level",)),
            ("{a}.x.{b}", "*.x.*", ("a", "b")),
            ("order.eu.placed", "order.eu.placed", ()),
            ("#.{tail}", "#.*", ("tail",)),
        ],
    )
    def test_binding_and_names(self, key: str, binding: str, names: tuple[str, ...]) -> None:
        """The binding replaces each parameter by ``*``; names keep their order."""
        pattern = KeyPattern.parse(key)
        assert (pattern.binding, pattern.names) == (binding, names)

    @pytest.mark.parametrize(
        ("key", "problem"),
        [
            ("logs.x{level}", "whole word between dots"),
            ("logs.{level}x", "whole word between dots"),
            ("logs.{a}{b}", "whole word between dots"),
            ("logs.{level", "whole word between dots"),
            ("logs.{}", "identifier"),
            ("logs.{1st}", "identifier"),
            ("{a}.{a}", "appears twice"),
            ("#.{level}.#", "ambiguous"),
        ],
    )
    def test_refused(self, key: str, problem: str) -> None:
        """Malformed or ambiguous parameters are configuration errors naming the key."""
        with pytest.raises(ConfigurationError, match=problem) as caught:
            KeyPattern.parse(key)
        assert repr(key) in str(caught.value)

    def test_keys_of_a_route_name_the_same_parameters(self) -> None:
        """Two patterns of one route naming different parameters are refused."""
        with pytest.raises(ConfigurationError, match="same parameters"):
            parse_keys(["logs.{level}", "audit.{who}"], what="topic pattern")
        assert len(parse_keys(["logs.{level}", "audit.{level}.#"], what="t")) == 2


class TestExtract:
    """One match per delivery gives each parameter its validated word."""

    def test_str_word(self) -> None:
        """A ``str`` parameter receives the word as it is."""
        assert plan("logs.{level}.#").extract("logs.error.db.slow") == {"level": "error"}

    def test_words_after_hash(self) -> None:
        """A parameter after ``#`` is counted from the end."""
        assert plan("#.{last}").extract("a.b.c") == {"last": "c"}
        assert plan("#.{last}").extract("c") == {"last": "c"}

    def test_typed_words(self) -> None:
        """Words validate as int, Enum and Literal values (Literal[1, 2] takes "1")."""
        typed = plan("{n}.{level}.{shard}", n=int, level=Level, shard=Literal[1, 2])
        assert typed.extract("7.error.2") == {"n": 7, "level": Level.ERROR, "shard": 2}

    @pytest.mark.parametrize(
        ("types", "key", "name"),
        [({"n": int}, "x.info.1", "n"), ({"level": Level}, "1.warn.1", "level"),
         ({"shard": Literal[1, 2]}, "1.info.3", "shard")],
    )  # fmt: skip
    def test_invalid_word_names_the_parameter(
        self, types: dict[str, Any], key: str, name: str
    ) -> None:
        """A word that does not validate is a DecodeError whose reason names the parameter."""
        with pytest.raises(DecodeError) as caught:
            plan("{n}.{level}.{shard}", **types).extract(key)
        assert f"routing key parameter {name!r}" in caught.value.reason
        assert caught.value.errors[0]["loc"] == ["routing_key", name]

    def test_key_that_does_not_match(self) -> None:
        """A key that reached the queue some other way is a DecodeError naming the pattern."""
        with pytest.raises(DecodeError, match=r"does not match 'logs\.\{level\}\.#'"):
            plan("logs.{level}.#").extract("metrics.cpu")

    def test_first_matching_pattern_wins(self) -> None:
        """With several patterns, the first that matches gives the words."""
        patterns = parse_keys(["logs.{level}", "audit.#.{level}"], what="t")
        both = KeyParameters(patterns, {"level": str})
        assert both.extract("logs.info") == {"level": "info"}
        assert both.extract("audit.x.y.warn") == {"level": "warn"}


WORDS = st.sampled_from(["a", "b", ""])
PATTERN_WORDS = st.sampled_from(["a", "b", "*", "#", "{p}"])


class TestAgreesWithMatching:
    """The compiled pattern matches exactly the keys RabbitMQ's binding (``*``) matches."""

    @settings(max_examples=400, deadline=None)
    @given(
        st.lists(PATTERN_WORDS, min_size=1, max_size=5),
        st.lists(WORDS, min_size=1, max_size=6),
    )
    def test_same_decision_as_topic_matching(
        self, pattern_words: list[str], key_words: list[str]
    ) -> None:
        """For any pattern and key, the plan matches iff the binding key routes the key."""
        if pattern_words.count("{p}") > 1:
            pattern_words = [w if w != "{p}" else "*" for w in pattern_words]
            pattern_words[0] = "{p}"
        key = ".".join(pattern_words)
        try:
            pattern = KeyPattern.parse(key)
        except ConfigurationError:
            return  # a parameter between two '#'
        routing_key = ".".join(key_words)
        try:
            KeyParameters([pattern], dict.fromkeys(pattern.names, str)).extract(routing_key)
            matched = True
        except DecodeError:
            matched = False
        assert matched == topic_matches(pattern.binding, routing_key)
