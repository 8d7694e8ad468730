"""Unit tests for the redelivery count and its limit."""

from __future__ import annotations

from typing import Any

import pytest

from burrowmq import ConfigurationError, TooManyRedeliveries
from burrowmq.routing.redelivery import check_max_redeliveries, delivery_count

pytestmark = pytest.mark.unit


class TestDeliveryCount:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({}, 0),
            ({"x-delivery-count": 3}, 3),
            ({"x-delivery-count": 0}, 0),
            ({"x-delivery-count": -1}, 0),
            ({"x-delivery-count": "7"}, 0),
            ({"x-delivery-count": True}, 0),
        ],
    )
    def test_reads_the_quorum_header(self, headers: dict[str, Any], expected: int) -> None:
        """Only a non-negative int in x-delivery-count counts; anything else is 0."""
        assert delivery_count(headers) == expected


class TestLimit:
    @pytest.mark.parametrize("value", [None, 0, 1, 10])
    def test_accepts_none_and_non_negative_ints(self, value: int | None) -> None:
        """None turns the check off; 0 and more are limits."""
        assert check_max_redeliveries(value) == value

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
    def test_rejects_the_rest(self, bad: Any) -> None:
        """Negative numbers, floats, bools and strings are configuration errors."""
        with pytest.raises(ConfigurationError):
            check_max_redeliveries(bad)

    def test_reason_names_count_and_limit(self) -> None:
        """The dead-letter reason says how often and what the limit was."""
        signal = TooManyRedeliveries(11, 10)
        assert "redelivered 11 times" in signal.reason
        assert "limit 10" in signal.reason
        assert str(signal) == signal.reason
