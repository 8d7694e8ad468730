"""RabbitMQ's names and AMQP's header-value rules, defined once."""

from __future__ import annotations

import base64
import datetime
import decimal
import time
from typing import Any

import pytest

from burrowmq.exceptions import PublishError
from burrowmq.framework import vocabulary
from burrowmq.framework.vocabulary import (
    carried,
    direct_reply_to_problem,
    header_problem,
    name_problem,
    unencodable,
    value_problem,
)

pytestmark = pytest.mark.unit


class TestNames:
    """The names everyone reads from here."""

    def test_exchange_and_queue_types(self) -> None:
        """The four exchange types and the three queue types, as RabbitMQ spells them."""
        assert set(vocabulary.EXCHANGE_TYPES) == {"direct", "fanout", "topic", "headers"}
        assert vocabulary.QUEUE_TYPES == ("classic", "quorum", "stream")
        assert vocabulary.X_MATCH_MODES == ("all", "any", "all-with-x", "any-with-x")

    def test_standard_exchanges_have_known_types(self) -> None:
        """Every predeclared exchange is reserved and has one of the four types."""
        for name, kind in vocabulary.STANDARD_EXCHANGES.items():
            assert name.startswith(vocabulary.RESERVED_PREFIX)
            assert kind in vocabulary.EXCHANGE_TYPES
        assert vocabulary.STANDARD_EXCHANGES["amq.match"] == "headers"

    def test_direct_reply_to(self) -> None:
        """The direct reply-to pseudo-queue is RabbitMQ's."""
        assert vocabulary.DIRECT_REPLY_TO == "amq.rabbitmq.reply-to"


class TestValues:
    """What an AMQP field table can carry."""

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            0,
            -(2**63),
            2**63 - 1,
            1.5,
            "text",
            "",
            bytearray(b"\x00\xff"),
            decimal.Decimal("1.25"),
            decimal.Decimal("1E+3"),
            datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            datetime.datetime(2024, 1, 1),
            time.gmtime(0),
            [1, "a", [None]],
            {"a": {"b": [1.5]}},
        ],
        ids=repr,
    )
    def test_carried(self, value: Any) -> None:
        """Values pamqp encodes and RabbitMQ relays have no problem."""
        assert value_problem(value) is None

    @pytest.mark.parametrize(
        ("value", "words"),
        [
            (b"raw", "holds a bytes, which AMQP headers cannot carry"),
            ((1, 2), "holds a tuple"),
            ({1, 2}, "holds a set"),
            (object(), "holds a object"),
            (2**63, "holds the int 9223372036854775808, outside the 64-bit range"),
            (-(2**63) - 1, "outside the 64-bit range"),
            (decimal.Decimal("NaN"), "not a finite number"),
            (decimal.Decimal(2**40), "does not fit an AMQP decimal"),
            ([1, (2,)], "holds a tuple"),
            ({"inner": b"x"}, "holds a bytes"),
            ({1: "x"}, "the key 1: field table keys must be strings"),
            ({"k" * 129: 1}, "table key longer than 128 bytes"),
        ],
        ids=lambda v: repr(v)[:30],
    )
    def test_not_carried(self, value: Any, words: str) -> None:
        """Each value AMQP cannot carry is named with the reason."""
        problem = value_problem(value)
        assert problem is not None and words in problem

    @pytest.mark.parametrize("value", [0.1, 1e300, -1e-300, -0.0])
    def test_every_finite_float_is_carried(self, value: float) -> None:
        """Floats travel as 64-bit doubles, so every finite Python float is carried."""
        assert value_problem(value) is None

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_floats_are_refused(self, value: float) -> None:
        """NaN and infinity are refused (RabbitMQ 4 closes the connection on them)."""
        problem = value_problem(value)
        assert problem is not None and "not a finite number" in problem


class TestHeaders:
    """The first header at fault is named, the same words on every transport."""

    def test_none_and_good_headers(self) -> None:
        """No headers, or headers AMQP carries, have no problem."""
        assert header_problem(None) is None
        assert header_problem({}) is None
        assert header_problem({"a": 1, "b": [True]}) is None

    def test_names_the_header(self) -> None:
        """The problem names the header, then what it holds."""
        assert header_problem({"ok": 1, "ids": {1, 2}}) == (
            "header 'ids' holds a set, which AMQP headers cannot carry (use str, int, "
            "float, bool, Decimal, datetime, bytearray, None, and lists and dicts of these)"
        )

    def test_long_header_name(self) -> None:
        """A header name longer than AMQP's 128-byte field name is refused (pamqp would cut it)."""
        problem = header_problem({"h" * 129: 1})
        assert problem is not None and "not a string of at most 128 bytes" in problem

    def test_unencodable_is_a_publish_error_naming_exchange_and_header(self) -> None:
        """The error both transports raise names the exchange and the header."""
        error = unencodable("orders", "eu", {"raw": b"x"}, "pamqp says no")
        assert isinstance(error, PublishError)
        assert (error.exchange, error.routing_key) == ("orders", "eu")
        assert str(error).startswith("cannot publish to exchange 'orders': header 'raw' holds")

    def test_unencodable_without_a_bad_header_gives_the_fallback(self) -> None:
        """When no header is at fault, another property is: the fallback text says what."""
        error = unencodable("orders", "", {"ok": 1}, "bad priority")
        assert "a message property could not be encoded (bad priority)" in str(error)


class TestCarried:
    """Headers of a received message made fit to be sent again (dead letters, retries)."""

    def test_converts_what_amqp_cannot_carry(self) -> None:
        """bytes become bytearray, other strays their repr; bad header names are dropped."""
        headers = {
            "raw": b"\xff\xfe",
            "nested": {"inner": b"x", "ok": [1, b"y"]},
            "odd": {1, 2},
            "k" * 129: 1,
            "fine": "text",
        }
        assert carried(headers) == {
            "raw": bytearray(b"\xff\xfe"),
            "nested": {"inner": bytearray(b"x"), "ok": [1, bytearray(b"y")]},
            "odd": "{1, 2}",
            "fine": "text",
        }
        assert header_problem(carried(headers)) is None


class TestNameProblems:
    """Exchange and queue names AMQP can send."""

    @pytest.mark.parametrize("name", ["orders", "a.b-c_d:e@f#g,h/i+j k", "x" * 127, ""])
    def test_good(self, name: str) -> None:
        """Letters, digits, space and -_.:@#,/+ up to 127 characters."""
        assert name_problem(name) is None

    @pytest.mark.parametrize(
        ("name", "words"),
        [("bad^name", "holds '^'"), ("x" * 128, "longer than 127"), ("caf\u00e9", "holds")],
    )
    def test_bad(self, name: str, words: str) -> None:
        """Anything else is named, with the character at fault."""
        problem = name_problem(name, "exchange")
        assert problem is not None and words in problem


def _address(node: bytes = b"reply@12345", *, key: str = "a2V5", tail: int = 12) -> str:
    pid = bytes([131, 88, 119, len(node)]) + node + bytes(tail)
    return f"amq.rabbitmq.reply-to.{base64.b64encode(pid).decode()}.{key}"


class TestDirectReplyTo:
    """Direct reply-to addresses are checked as strictly as RabbitMQ 3.x decodes them."""

    def test_well_formed(self) -> None:
        """A pid on a reply@<hash> node and a base64 key is accepted."""
        assert direct_reply_to_problem(_address()) is None

    @pytest.mark.parametrize(
        ("address", "words"),
        [
            ("amq.rabbitmq.reply-to", "does not start with"),
            ("amq.rabbitmq.reply-to.AAAA", "not <address>.<key>"),
            ("amq.rabbitmq.reply-to.AAAA.b.c", "not <address>.<key>"),
            ("amq.rabbitmq.reply-to.!!!!.a2V5", "not valid base64"),
            ("amq.rabbitmq.reply-to.g2dk.a2V5", "not an Erlang process id"),
            (_address(b"rabbit@host"), "names no direct reply-to node"),
            (_address(tail=5), "cut short or too long"),
            (_address(key="k\u00e9y"), "not <address>.<key>"),
        ],
        ids=["bare", "no-key", "two-dots", "not-base64", "not-a-pid", "v1-node", "short", "key"],
    )
    def test_malformed(self, address: str, words: str) -> None:
        """Each malformed address is refused with the reason."""
        problem = direct_reply_to_problem(address)
        assert problem is not None and words in problem
