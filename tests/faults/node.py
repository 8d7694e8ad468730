"""A private RabbitMQ node for fault tests: own name, ports and data folder, loopback only.

It is started as root with ``rabbitmq-server -detached``; the Debian wrapper switches to
the ``rabbitmq`` user, whose home (``/var/lib/rabbitmq``) holds the Erlang cookie, so
``rabbitmqctl -n <name>@localhost`` (run the same way) authenticates to it. The node
gets its own ``rabbitmq.conf`` and an empty plugin list: the system-wide config binds
5672 and enables the management plugin, which would clash with the shared broker.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NodeError", "RabbitNode", "can_run_nodes"]


class NodeError(RuntimeError):
    """The private node could not be started, stopped or commanded."""


def can_run_nodes() -> str | None:
    """Why private nodes cannot run here, or ``None`` when they can."""
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        return "rabbitmq-server is not installed"
    if os.geteuid() != 0:
        return "private RabbitMQ nodes are started as root (the rabbitmq user owns them)"
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return "there is no rabbitmq user"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RabbitNode:
    """One private RabbitMQ node; :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`remove`."""

    def __init__(self, *, conf: Sequence[str] = (), advanced_config: str | None = None) -> None:
        """A node not yet started.

        Args:
            conf: extra ``rabbitmq.conf`` lines (e.g. ``"consumer_timeout = 3000"``).
            advanced_config: the text of an ``advanced.config`` (Erlang terms), for
                settings ``rabbitmq.conf`` has no key for.
        """
        self.name = f"bmqfault{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        while self.dist_port == self.port:
            self.dist_port = _free_port()
        self.home = Path(tempfile.mkdtemp(prefix="burrowmq-node-"))
        self.boots: list[float] = []
        self._running = False
        user = pwd.getpwnam("rabbitmq")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\nlog.console = false\n"
            + "".join(f"{line}\n" for line in conf)
        )
        (self.home / "enabled_plugins").write_text("[].\n")
        files = [self.home, self.home / "rabbitmq.conf", self.home / "enabled_plugins"]
        if advanced_config is not None:
            (self.home / "advanced.config").write_text(advanced_config.strip() + "\n")
            files.append(self.home / "advanced.config")
        self.home.chmod(0o755)
        for path in files:
            os.chown(path, user.pw_uid, user.pw_gid)
        self._env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
        }
        if advanced_config is not None:
            self._env["RABBITMQ_ADVANCED_CONFIG_FILE"] = str(self.home / "advanced.config")

    @property
    def pid_file(self) -> Path:
        """Where the node writes its OS pid."""
        return self.home / "pid"

    @property
    def running(self) -> bool:
        """Whether the node was started and not stopped since."""
        return self._running

    @property
    def url(self) -> str:
        """The AMQP URL of the node (guest may log in over loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> ARGS``; return its output.

        Raises:
            NodeError: the command failed.
        """
        try:
            done = subprocess.run(
                ["rabbitmqctl", "-q", "-n", self.name, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise NodeError(f"rabbitmqctl {' '.join(args)} timed out after {timeout}s") from exc
        if done.returncode != 0:
            raise NodeError(
                f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout

    def start(self, timeout: float = 90.0) -> float:
        """Boot the node and wait until it serves AMQP; return the seconds it took.

        Raises:
            NodeError: it did not come up (the end of its log is in the message).
        """
        started = time.monotonic()
        self.pid_file.unlink(missing_ok=True)
        done = subprocess.run(
            ["rabbitmq-server", "-detached"],
            capture_output=True,
            text=True,
            timeout=60,
            env=self._env,
            check=False,
        )
        if done.returncode != 0:
            raise NodeError(f"rabbitmq-server -detached failed: {done.stderr.strip()[-800:]}")
        self._running = True
        try:
            self.ctl(
                "wait", str(self.pid_file), "--timeout", str(int(timeout)), timeout=timeout + 10
            )
        except NodeError as exc:
            raise NodeError(f"{exc}\n--- node log ---\n{self.log_tail()}") from None
        seconds = time.monotonic() - started
        self.boots.append(seconds)
        return seconds

    def stop(self) -> None:
        """Stop the node and wait for its OS process to exit (data is kept)."""
        if not self._running:
            return
        self._running = False
        try:
            self.ctl("stop", str(self.pid_file), timeout=90)
        except NodeError:
            self._kill()

    def restart(self) -> float:
        """Stop then start the node with the same data; return the boot seconds."""
        self.stop()
        return self.start()

    def close_all_connections(self, reason: str = "fault test") -> None:
        """Force-close every client connection of this node (never the shared broker)."""
        self.ctl("close_all_connections", reason)

    def eval(self, expression: str, timeout: float = 60.0) -> str:
        """Evaluate an Erlang expression on the node (``rabbitmqctl eval``); its printed result.

        Raises:
            NodeError: the command failed.
        """
        return self.ctl("eval", expression, timeout=timeout).strip()

    def alarms(self) -> str:
        """The node's resource alarms as Erlang prints them (``"[]"`` when there are none)."""
        return self.eval("rabbit_alarm:get_alarms().")

    def remove(self) -> None:
        """Stop the node (killing it if need be) and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's log, for failure messages."""
        logs = sorted((self.home / "log").glob("*.log"))
        if not logs:
            return "(no log)"
        return "\n".join(logs[0].read_text(errors="replace").splitlines()[-lines:])

    def _kill(self) -> None:
        try:
            pid = int(self.pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if self.name.split("@")[0].encode() not in command:
            return  # not our node (the pid was reused): leave it alone
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            return
