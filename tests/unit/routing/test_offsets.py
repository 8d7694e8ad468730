"""Unit: stream offsets (the contiguous mark) and the options of stream routes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from burrowmq import ConfigurationError, Router
from burrowmq.routing.offsets import OffsetTracker, check_offset, offset_argument, parse_mark
from burrowmq.routing.stream import StreamOptions, stream_queue

D: Any = object()  # stands in for a delivery


class TestOffsetTracker:
    """The mark passes only offsets settled with everything before them."""

    def test_in_order(self) -> None:
        """Settled in order, the mark follows."""
        tracker = OffsetTracker()
        for offset in range(3):
            tracker.delivered(offset)
        tracker.settled(0, D)
        tracker.settled(1, D)
        assert tracker.done == 1
        assert tracker.in_flight == 1

    def test_a_slow_message_holds_the_mark(self) -> None:
        """Offsets settled past an unsettled one do not move the mark until it settles."""
        tracker = OffsetTracker(done=9)
        for offset in range(10, 14):
            tracker.delivered(offset)
        for offset in (11, 12, 13):
            assert tracker.settled(offset, offset) == []  # held, unacked
        assert tracker.done == 9
        assert tracker.settled(10, 10) == [10, 11, 12, 13]
        assert tracker.done == 13

    def test_restart_forgets_what_was_in_flight(self) -> None:
        """After a restart, a late settle of an old delivery changes nothing."""
        tracker = OffsetTracker()
        tracker.delivered(0)
        tracker.delivered(1)
        tracker.settled(0, D)
        tracker.restart()
        assert tracker.settled(1, D) == [D]  # acked at once: its channel is gone anyway
        assert tracker.done == 0
        assert tracker.in_flight == 0

    def test_counts_settled_since_commit(self) -> None:
        """since_commit counts every settled delivery, gaps or not."""
        tracker = OffsetTracker()
        for offset in range(3):
            tracker.delivered(offset)
        tracker.settled(2, D)
        tracker.settled(1, D)
        assert (tracker.since_commit, tracker.done) == (2, None)


class TestOffsetOptions:
    """offset= takes first/last/next, an int, an aware datetime or a timedelta."""

    @pytest.mark.parametrize("offset", ["first", "last", "next", 0, 42])
    def test_plain_values_pass_through(self, offset: object) -> None:
        """Names and ints are the argument as given."""
        assert offset_argument(check_offset(offset, "t")) == offset

    def test_timedelta_counts_back_from_now(self) -> None:
        """A timedelta becomes the aware datetime that long ago."""
        value = offset_argument(datetime.timedelta(hours=1))
        assert isinstance(value, datetime.datetime)
        ago = datetime.datetime.now(datetime.UTC) - value
        assert datetime.timedelta(minutes=59) < ago < datetime.timedelta(minutes=61)

    @pytest.mark.parametrize(
        "offset", ["earliest", -1, True, 1.5, datetime.datetime(2024, 1, 1), None]
    )
    def test_bad_offsets_are_refused(self, offset: object) -> None:
        """Anything else, naive datetimes included, is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="offset="):
            StreamOptions(offset=offset)  # type: ignore[arg-type]


class TestStreamQueue:
    """router.stream declares a stream with its retention, and checks its options."""

    def test_retention_arguments(self) -> None:
        """max_age (timedelta or text) and max_length_bytes become the stream's arguments."""
        queue = stream_queue("events", max_age=datetime.timedelta(days=1), max_length_bytes=5)
        assert queue.arguments == {
            "x-queue-type": "stream",
            "x-max-age": "86400s",
            "x-max-length-bytes": 5,
        }
        assert stream_queue("e", max_age="7D", max_length_bytes=None).arguments["x-max-age"] == "7D"

    @pytest.mark.parametrize(
        "options",
        [{"max_age": "7 days"}, {"max_age": datetime.timedelta(0)}, {"max_length_bytes": -1}],
    )
    def test_bad_retention_is_refused(self, options: dict[str, object]) -> None:
        """A bad age or size is a ConfigurationError when decorating."""
        with pytest.raises(ConfigurationError):
            Router().stream("events", **options)  # type: ignore[arg-type]

    def test_route_topology_has_no_dead_letter_exchange(self) -> None:
        """The stream has no x-dead-letter-exchange; the dlq and offset queue are declared."""
        router = Router()

        @router.stream("events", consumer="billing-projection", offset="first")
        async def project(event: dict[str, int]) -> None: ...

        [route] = router.routes
        topology = route.topology("i")
        stream = topology.queue("events")
        assert stream is not None
        assert "x-dead-letter-exchange" not in stream.arguments
        assert topology.queue("billing-projection.dlq") is not None
        offsets = topology.queue("events.billing-projection.offset")
        assert offsets is not None
        assert offsets.arguments["x-max-length"] == 1
        assert not topology.exchanges

    def test_bad_consumer_name(self) -> None:
        """A reserved or empty consumer name is refused."""
        for name in ("", "amq.x"):
            with pytest.raises(ConfigurationError):
                Router().stream("events", consumer=name)


class TestParseMark:
    """parse_mark: the offset a stored mark holds, or why it holds none."""

    def test_a_good_mark(self) -> None:
        """A JSON object with an int offset >= 0 gives that offset."""
        assert parse_mark(b'{"stream": "s", "consumer": "c", "offset": 12}') == (12, None)
        assert parse_mark(b'{"offset": 0}') == (0, None)

    @pytest.mark.parametrize(
        ("body", "says"),
        [
            (b"\xff{", "not JSON"),
            (b"not json", "not JSON"),
            (b"[1]", "not an integer"),
            (b'{"offset": "3"}', "not an integer"),
            (b'{"offset": 3.0}', "not an integer"),
            (b'{"offset": true}', "not an integer"),
            (b'{"other": 3}', "not an integer"),
            (b'{"offset": -1}', "negative"),
        ],
    )
    def test_a_forged_mark_says_why(self, body: bytes, says: str) -> None:
        """A body that is not JSON, or whose offset is not an int >= 0, gives a reason."""
        value, problem = parse_mark(body)
        assert value is None
        assert problem is not None and says in problem
