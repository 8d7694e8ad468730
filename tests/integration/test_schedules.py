"""Schedules on the real broker: three instances, one tick at a time, takeover on kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def _read(log: Path) -> tuple[list[tuple[int, float]], dict[tuple[int, int], float]]:
    """Tick starts (pid, time) in order, and the end of each pid's n-th tick."""
    starts: list[tuple[int, float]] = []
    ends: dict[tuple[int, int], float] = {}
    counts: dict[int, int] = {}
    for line in log.read_text().splitlines():
        what, pid, at = line.split()
        if what == "start":
            starts.append((int(pid), float(at)))
        else:
            n = counts.get(int(pid), 0)
            ends[(int(pid), n)] = float(at)
            counts[int(pid)] = n + 1
    return starts, ends


def _count(log: Path) -> int:
    return len(_read(log)[0]) if log.exists() else 0


async def _wait_lines(log: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _count(log) < count:
        assert time.monotonic() < deadline, f"fewer than {count} ticks in {timeout}s"
        await asyncio.sleep(0.05)


class TestLeadership:
    async def test_three_instances_tick_once_each_second_and_fail_over(
        self, fresh_vhost: str, tmp_path: Path
    ) -> None:
        """3 processes, every=1s, 30 s: 28-31 ticks, never two at once; kill -9 of the leader: next tick within 5 s."""
        log = tmp_path / "ticks.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.integration.schedule_worker",
                fresh_vhost,
                str(log),
                cwd=ROOT,
                env=env,
            )
            for _ in range(3)
        ]
        try:
            await asyncio.sleep(3)  # all three consuming (the first ticks may have run)
            await _wait_lines(log, 1, 20)
            window_start = time.time()
            await asyncio.sleep(12)
            leader = _read(log)[0][-1][0]
            os.kill(leader, signal.SIGKILL)
            killed_at = time.time()
            await asyncio.sleep(window_start + 30 - time.time())
            window_end = time.time()
        finally:
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
            for proc in procs:
                await asyncio.wait_for(proc.wait(), 20)
        starts, ends = _read(log)
        ticks = [(pid, at) for pid, at in starts if window_start <= at < window_end]
        # Each run's interval: its start to its end (a killed run: to the kill).
        runs, seen = [], {}
        for pid, at in starts:
            n = seen.get(pid, 0)
            seen[pid] = n + 1
            runs.append((at, ends.get((pid, n), killed_at), pid))
        runs.sort()
        overlaps = [(a, b) for a, b in itertools.pairwise(runs) if b[0] < a[1]]
        after = [at for pid, at in starts if at > killed_at and pid != leader]
        takeover = after[0] - killed_at
        pids = sorted({pid for pid, _ in ticks})
        print(
            f"\nticks in {window_end - window_start:.1f}s: {len(ticks)}; by instance: "
            f"{[sum(1 for p, _ in ticks if p == pid) for pid in pids]}; overlaps: "
            f"{len(overlaps)}; killed leader {leader} at +{killed_at - window_start:.1f}s; "
            f"next tick by {next(p for p, at in starts if at > killed_at)} after {takeover:.2f}s"
        )
        assert 28 <= len(ticks) <= 31
        assert overlaps == []
        assert takeover <= 5.0
        assert len(pids) >= 2
