"""``burrowmq`` commands, above all ``burrowmq run`` workers, as real child processes.

A :class:`BurrowmqProcess` runs from the repository root and imports ``burrowmq`` and
``tests`` from this tree (``PYTHONPATH``), whatever is installed; its output (stdout and
stderr) goes to a log file, for failure messages. :func:`start_worker` starts
``burrowmq run module:app``; :func:`stop_all` stops workers together, as a deployment
does; :func:`recorded` reads back the record file a worker appends a line to per message
it handled.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""

STOP_TIMEOUT = 15.0
"""Seconds a process gets to exit after SIGTERM before it is killed."""


def _environment(env: dict[str, str]) -> dict[str, str]:
    inherited = os.environ.get("PYTHONPATH")
    path = [str(ROOT / "src"), str(ROOT), *([inherited] if inherited else [])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1", **env}


class BurrowmqProcess:
    """``burrowmq <args>`` in a child process, with ``env`` added to the environment.

    As a context manager, the process is killed when the block ends if it still runs.
    """

    def __init__(self, log: Path, *args: str, **env: str) -> None:
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from burrowmq.cli import main; sys.exit(main())",
                *args,
            ],
            cwd=ROOT,
            env=_environment(env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> BurrowmqProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` if the process still runs."""
        if self.running():
            self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the process to exit, kill it if it has not,
        close its log; its exit code."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._out.close()
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL: no shutdown, no acks, like a crash or an OOM kill; the exit code."""
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def stop(self) -> int:
        """SIGTERM, then a graceful exit (killed after :data:`STOP_TIMEOUT`); the exit code."""
        stop_all([self])
        return self.process.returncode

    async def exited(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit code. Fails the test (and kills
        the process) when it still runs after ``timeout`` seconds."""
        try:
            await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"burrowmq did not exit within {timeout}s:\n{self.output()[-2000:]}")
        return self.wait(0)

    def output(self) -> str:
        """What the process printed so far."""
        return self.log.read_text(errors="replace")


def start_worker(app: str, url: str, log: Path, *options: str, **env: str) -> BurrowmqProcess:
    """``burrowmq run app --url url --log-level warning *options`` (``app`` is a
    ``module:attribute`` of this tree, e.g. ``tests.faults.worker:app``)."""
    return BurrowmqProcess(log, "run", app, "--url", url, "--log-level", "warning", *options, **env)


def stop_all(workers: Iterable[BurrowmqProcess]) -> None:
    """SIGTERM every one still running, then wait for each to exit; one that takes longer
    than :data:`STOP_TIMEOUT` is killed."""
    workers = list(workers)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(STOP_TIMEOUT)


def recorded(path: Path) -> list[str]:
    """The lines of a worker's record file: none before it is written, and not a last one
    the worker has not ended yet."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()
