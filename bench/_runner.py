"""The cross-client run: each (scenario, client) in a fresh process, clients rotated per rep.

For each repetition and scenario, the clients run one after the other in an order
rotated by one each repetition (so none always meets the broker first or last), each on
fresh queues that the parent fills or declares before and deletes after, outside the
child's measured window. RPC clients talk to their own framework's server, started in a
second process for the client's run.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._common import declare, delete_queues, prefill, unique

CLIENTS = ("pika", "aiopika", "faststream", "burrowmq")
OPTIONAL = ("burrowmq-uvloop",)
"""Clients run only when ``--clients`` names them: burrowmq on uvloop's event loop."""
ALL = (*CLIENTS, *OPTIONAL)
AIOPIKA = ("aiopika", "aiopika-patterns")
TIMEOUT = 900


@dataclass(frozen=True)
class Metric:
    """One figure a scenario reports: its key in the child's JSON, unit and direction."""

    key: str
    name: str
    unit: str
    higher_is_better: bool


@dataclass(frozen=True)
class Scenario:
    """A scenario of the cross-client run: which clients, what to prepare, what to read."""

    key: str
    title: str
    clients: tuple[str, ...]
    metrics: tuple[Metric, ...]
    params: dict[str, int]
    quick: dict[str, int]
    prefill: bool = False
    server: bool = False


def _rates(op: str) -> tuple[Metric, ...]:
    return (
        Metric("rate", f"{op}s/s", "1/s", True),
        Metric("client_us", f"client µs/{op}", "µs", False),
        Metric("broker_us", f"broker µs/{op}", "µs", False),
    )


SCENARIOS = {
    s.key: s
    for s in (
        Scenario(
            "consume",
            "consume (ack, prefetch 256)",
            ALL,
            _rates("msg"),
            {"count": 20_000, "prefetch": 256},
            {"count": 2_000, "prefetch": 256},
            prefill=True,
        ),
        Scenario(
            "publish",
            "publish 1-by-1 (confirms)",
            ALL,
            _rates("msg"),
            {"count": 3_000},
            {"count": 300},
        ),
        Scenario(
            "batch",
            "publish 256 in flight",
            ("aiopika", "burrowmq", *OPTIONAL),
            _rates("msg"),
            {"count": 10_000, "window": 256},
            {"count": 2_000, "window": 256},
        ),
        Scenario(
            "rpc",
            "rpc",
            ("pika", *AIOPIKA, "faststream", "burrowmq", *OPTIONAL),
            (
                Metric("p50_ms", "c=1 p50 ms", "ms", False),
                Metric("p99_ms", "c=1 p99 ms", "ms", False),
                Metric("c1_client_us", "c=1 client µs/call", "µs", False),
                Metric("c64_rate", "c=64 calls/s", "1/s", True),
                Metric("c64_client_us", "c=64 client µs/call", "µs", False),
                Metric("c64_broker_us", "c=64 broker µs/call", "µs", False),
            ),
            {"latency_calls": 500, "calls": 3_000, "concurrency": 64, "prefetch": 64},
            {"latency_calls": 100, "calls": 500, "concurrency": 64, "prefetch": 64},
            server=True,
        ),
    )
}


@dataclass
class Row:
    """The samples of one metric of one scenario, per client, one per repetition."""

    scenario: Scenario
    metric: Metric
    samples: dict[str, list[float | None]] = field(default_factory=dict)

    def median(self, client: str) -> float | None:
        values = [v for v in self.samples.get(client, []) if v is not None]
        return statistics.median(values) if values else None

    def best_aiopika(self, rep: int | None = None) -> tuple[str, float] | None:
        """The best aio-pika variant, by median or in repetition ``rep``."""
        figures = {}
        for client in AIOPIKA:
            if rep is None:
                value = self.median(client)
            else:
                values = self.samples.get(client, [])
                value = values[rep] if rep < len(values) else None
            if value is not None:
                figures[client] = value
        if not figures:
            return None
        pick = max if self.metric.higher_is_better else min
        best = pick(figures, key=lambda c: figures[c])
        return best, figures[best]

    def ratio(self, other: str) -> dict[str, float] | None:
        """burrowmq / ``other`` (``"best-aiopika"`` for the best variant): median, min, max."""
        ours = self.median("burrowmq")
        if other == "best-aiopika":
            best = self.best_aiopika()
            theirs = best[1] if best else None
        else:
            theirs = self.median(other)
        if not ours or not theirs:
            return None
        per_rep = []
        for rep, value in enumerate(self.samples.get("burrowmq", [])):
            if other == "best-aiopika":
                found = self.best_aiopika(rep)
                base = found[1] if found else None
            else:
                values = self.samples.get(other, [])
                base = values[rep] if rep < len(values) else None
            if value is not None and base:
                per_rep.append(value / base)
        return {
            "ratio": round(ours / theirs, 3),
            "min": round(min(per_rep), 3) if per_rep else 0.0,
            "max": round(max(per_rep), 3) if per_rep else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        best = self.best_aiopika()
        return {
            "scenario": self.scenario.title,
            "metric": self.metric.name,
            "unit": self.metric.unit,
            "higher_is_better": self.metric.higher_is_better,
            "medians": {c: _round(self.median(c)) for c in self.samples},
            "samples": {c: [_round(v) for v in vs] for c, vs in self.samples.items()},
            "burrowmq_over_pika": self.ratio("pika"),
            "best_aiopika": best[0] if best else None,
            "burrowmq_over_best_aiopika": self.ratio("best-aiopika"),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def rotated(clients: Sequence[str], rep: int) -> list[str]:
    """``clients`` rotated left by ``rep``: each repetition starts with the next one."""
    shift = rep % len(clients) if clients else 0
    return [*clients[shift:], *clients[:shift]]


def _child(client: str, what: str, params: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "bench._child", client, what, json.dumps(params)]


def run_one(scenario: Scenario, client: str, params: dict[str, Any]) -> dict[str, Any]:
    """Prepare fresh queues, run ``client`` in a child process, clean up; its figures."""
    name = unique(f"{scenario.key}.{client}").replace(".", "-")
    params = {**params, "queue": name}
    if scenario.prefill:
        asyncio.run(prefill(name, params["count"]))
    elif not scenario.server:
        asyncio.run(declare(name))
    server = None
    try:
        if scenario.server:
            server = subprocess.Popen(
                _child(client, "serve", {"queue": name, "prefetch": params["prefetch"]}),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            ready = server.stdout.readline().strip()
            if ready != "ready":
                raise RuntimeError(f"{client} RPC server did not start: {ready!r}")
        done = subprocess.run(
            _child(client, scenario.key, params),
            stdout=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        if server is not None:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(60)
        from burrowmq.routing.procedure import service_queue

        asyncio.run(delete_queues(name, service_queue(name)))


def run(
    keys: Sequence[str],
    clients: Sequence[str],
    *,
    reps: int,
    quick: bool,
    broker: int | None,
) -> list[Row]:
    """Every selected scenario over ``reps`` repetitions; the rows of figures."""
    rows: list[Row] = []
    wanted = set(clients) | ({"aiopika-patterns"} if "aiopika" in clients else set())
    plan = []
    for key in keys:
        scenario = SCENARIOS[key]
        chosen = [c for c in scenario.clients if c in wanted]
        scenario_rows = [Row(scenario, m, {c: [] for c in chosen}) for m in scenario.metrics]
        rows.extend(scenario_rows)
        plan.append((scenario, chosen, scenario_rows))
    for rep in range(reps):
        for scenario, chosen, scenario_rows in plan:
            params = {**(scenario.quick if quick else scenario.params), "broker": broker}
            for client in rotated(chosen, rep):
                try:
                    figures = run_one(scenario, client, params)
                except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
                    # One client failing (its traceback is above, on stderr) leaves a gap
                    # in its column, not a lost run.
                    print(f"rep {rep + 1}/{reps} {scenario.key} {client}: FAILED {exc}")
                    figures = {}
                for row in scenario_rows:
                    row.samples[client].append(figures.get(row.metric.key))
                shown = ", ".join(
                    f"{k} {v:.4g}" for k, v in figures.items() if isinstance(v, float)
                )
                print(f"rep {rep + 1}/{reps} {scenario.key} {client}: {shown}", file=sys.stderr)
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _fmt_ratio(ratio: dict[str, float] | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio['ratio']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table: medians per client, burrowmq/pika and burrowmq/best aio-pika."""
    clients = [
        c
        for c in ("pika", *AIOPIKA, "faststream", "burrowmq", *OPTIONAL)
        if any(c in r.samples for r in rows)
    ]
    head = ["scenario", "metric", *clients, "burrowmq/pika", "burrowmq/best aio-pika"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.scenario.title, row.metric.name]
        cells += [_fmt(row.median(c)) if c in row.samples else "—" for c in clients]
        best = row.best_aiopika()
        best_ratio = _fmt_ratio(row.ratio("best-aiopika"))
        if best and best_ratio != "—" and best[0] != "aiopika":
            best_ratio += " vs patterns"
        cells += [_fmt_ratio(row.ratio("pika")), best_ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
