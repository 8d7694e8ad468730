"""Tests for `burrowmq stream`: positions, refused destinations, the parser (no broker)."""

from __future__ import annotations

import datetime

import pytest

from burrowmq.cli import build_parser
from burrowmq.cli.stream import _check_destination, named_consumers, parse_position
from burrowmq.exceptions import ConfigurationError

pytestmark = pytest.mark.unit


class TestParsePosition:
    def test_offsets_first_and_zoned_times(self) -> None:
        """An int, 'first', and an ISO-8601 time with a zone (Z too) are positions."""
        assert parse_position("0", "--from") == 0
        assert parse_position("42", "--from") == 42
        assert parse_position("first", "--from") == "first"
        moment = parse_position("2026-12-02T09:30:00Z", "--from")
        assert moment == datetime.datetime(2026, 12, 2, 9, 30, tzinfo=datetime.UTC)

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("-1", "--until takes an offset >= 0"),
            ("soon", "--until takes an offset, 'first' or an ISO-8601 time"),
            ("2026-12-02T09:30:00", "has no time zone"),
        ],
    )
    def test_bad_positions_name_the_option(self, text: str, says: str) -> None:
        """A negative offset, a word and a naive time are refused, naming the option."""
        with pytest.raises(ConfigurationError, match=says):
            parse_position(text, "--until")


class TestDestination:
    @pytest.mark.parametrize(
        ("exchange", "routing_key"),
        [
            ("burrowmq.rpc", None),
            ("burrowmq.delay.outbox", None),
            ("amq.private", None),
            ("", "burrowmq.delay.3"),
            ("", "amq.gen-x"),
            ("", "events"),
        ],
    )
    def test_refused(self, exchange: str, routing_key: str | None) -> None:
        """burrowmq's names, the broker's reserved ones and the stream itself are refused."""
        with pytest.raises(ConfigurationError, match="will not replay"):
            _check_destination(exchange, routing_key, "events")

    @pytest.mark.parametrize(
        ("exchange", "routing_key"),
        [("orders", None), ("amq.topic", "x"), ("", "orders.replayed"), ("", None)],
    )
    def test_allowed(self, exchange: str, routing_key: str | None) -> None:
        """User exchanges, the standard amq.* exchanges and user queues are allowed."""
        _check_destination(exchange, routing_key, "events")


class TestParser:
    def test_replay_requires_from_and_to(self) -> None:
        """`stream replay NAME` without --from and --to is a usage error."""
        with pytest.raises(SystemExit):
            build_parser().parse_args(["stream", "replay", "events"])

    def test_info_takes_consumers(self) -> None:
        """`stream info` collects repeated --consumer names."""
        args = build_parser().parse_args(
            ["stream", "info", "events", "--consumer", "a", "--consumer", "b", "--json"]
        )
        assert (args.name, args.consumer, args.json) == ("events", ["a", "b"], True)


class TestNamedConsumers:
    def test_offset_queues_of_this_stream_only(self) -> None:
        """Its `<stream>.<consumer>.offset` queues count; a longer stream's do not."""
        queues = [
            {"name": "orders", "type": "stream"},
            {"name": "orders.billing.offset", "type": "classic"},
            {"name": "orders.audit.v2.offset", "type": "classic"},
            {"name": "orders.eu", "type": "stream"},
            {"name": "orders.eu.billing.offset", "type": "classic"},
            {"name": "orders.billing.dlq", "type": "quorum"},
            {"name": "orders..offset", "type": "classic"},
            {"name": "other.billing.offset", "type": "classic"},
        ]
        assert named_consumers("orders", queues) == ["audit.v2", "billing"]
        assert named_consumers("orders.eu", queues) == ["billing"]
