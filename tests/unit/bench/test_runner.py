"""The pure logic of bench._runner: rotation of the clients and the ratios of a row."""

from __future__ import annotations

import pytest
from bench._runner import SCENARIOS, Row, rotated, table

pytestmark = pytest.mark.unit


class TestRotated:
    def test_each_repetition_starts_with_the_next(self) -> None:
        """Repetition r starts with the r-th client, wrapping around."""
        clients = ["a", "b", "c"]
        assert [rotated(clients, r)[0] for r in range(4)] == ["a", "b", "c", "a"]
        assert rotated(clients, 1) == ["b", "c", "a"]


def _row(metric: int, samples: dict[str, list[float | None]]) -> Row:
    scenario = SCENARIOS["rpc"]
    return Row(scenario, scenario.metrics[metric], samples)


class TestRow:
    def test_ratio_to_pika_with_spread(self) -> None:
        """The ratio is of the medians; min and max are of the per-repetition ratios."""
        row = _row(3, {"pika": [100.0, 200.0, 100.0], "burrowmq": [150.0, 200.0, 120.0]})
        assert row.ratio("pika") == {"ratio": 1.5, "min": 1.0, "max": 1.5}

    def test_best_aiopika_by_direction(self) -> None:
        """The best aio-pika variant is the fastest for rates and the lowest for latency."""
        samples: dict[str, list[float | None]] = {
            "aiopika": [2.0, 3.0],
            "aiopika-patterns": [4.0, 2.0],
            "burrowmq": [1.0, 1.0],
        }
        latency, rate = _row(0, samples), _row(3, samples)
        assert latency.best_aiopika() == ("aiopika", 2.5)
        assert rate.best_aiopika() == ("aiopika-patterns", 3.0)
        # Per repetition the best is chosen again: min(2, 4) and min(3, 2).
        assert latency.ratio("best-aiopika") == {"ratio": 0.4, "min": 0.5, "max": 0.5}

    def test_missing_figures(self) -> None:
        """A client without the figure (pika at c=64) gives no ratio and a dash."""
        row = _row(3, {"pika": [None], "burrowmq": [5.0]})
        assert row.median("pika") is None
        assert row.ratio("pika") is None
        assert "| — |" in table([row])
