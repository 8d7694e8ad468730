"""Private RabbitMQ nodes for fault tests: own name, ports and data folder, loopback only.

Two flavours, chosen by ``BURROWMQ_TEST_NODES`` (or ``RabbitNode(flavour=...)``):

``host`` (the default)
    The host's ``rabbitmq-server`` (3.10 on the project's machines), started as root with
    ``rabbitmq-server -detached``; the Debian wrapper switches to the ``rabbitmq`` user,
    whose home (``/var/lib/rabbitmq``) holds the Erlang cookie, so ``rabbitmqctl -n
    <name>@localhost`` (run the same way) authenticates to it. The node gets its own
    ``rabbitmq.conf`` and an empty plugin list: the system-wide config binds 5672 and
    enables the management plugin, which would clash with the shared broker.
``rabbitmq4``
    RabbitMQ 4.0.5 from the Debian trixie chroot of ``scripts/rabbitmq4`` (built once per
    machine), which runs every node of this flavour: the shared one on 5673 and these
    private ones, each with its own ``RABBITMQ4_NODENAME``, ports and data dir inside the
    chroot, no management plugin. They share the chroot's Erlang cookie, so they can be
    clustered. Files named in ``conf`` (TLS certificates) are copied into the chroot.

Both have the same interface: :class:`RabbitNode`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "FLAVOURS",
    "HOST",
    "RABBITMQ4",
    "Host310Node",
    "NodeError",
    "Rabbit4Node",
    "RabbitNode",
    "can_run_nodes",
    "nodes_flavour",
    "nodes_version",
]

HOST = "host"
"""Nodes of the host's ``rabbitmq-server`` (3.10 on the project's machines)."""
RABBITMQ4 = "rabbitmq4"
"""RabbitMQ 4.0.5 nodes in the chroot of ``scripts/rabbitmq4``."""
FLAVOURS = (HOST, RABBITMQ4)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RABBITMQ4_SCRIPT = PROJECT_ROOT / "scripts" / "rabbitmq4"
RABBITMQ4_ROOT = Path(os.environ.get("RABBITMQ4_ROOT") or "/var/cache/burrowmq/rabbitmq4-trixie")
RABBITMQ4_MARKER = RABBITMQ4_ROOT / ".burrowmq-rabbitmq4-ready"  # written by scripts/rabbitmq4
RABBITMQ4_NODE_DIRS = "/var/lib/burrowmq-node"  # inside the chroot, as in scripts/rabbitmq4

BASE_CONF = ("loopback_users = none", "log.console = false")
"""``rabbitmq.conf`` lines of every private node (besides its listener)."""


class NodeError(RuntimeError):
    """The private node could not be started, stopped or commanded."""


def nodes_flavour() -> str:
    """The flavour ``BURROWMQ_TEST_NODES`` asks for (``host`` when unset).

    Raises:
        NodeError: it names no flavour.
    """
    value = os.environ.get("BURROWMQ_TEST_NODES", "").strip() or HOST
    if value not in FLAVOURS:
        raise NodeError(f"BURROWMQ_TEST_NODES={value!r}: expected one of {', '.join(FLAVOURS)}")
    return value


_rabbitmq4_build_failure: list[str] = []  # why the chroot could not be built (tried once)


def can_run_nodes(
    flavour: str | None = None, progress: Callable[[str], None] | None = None
) -> str | None:
    """Why private nodes of ``flavour`` cannot run here, or ``None`` when they can.

    For ``rabbitmq4``, the chroot is built when missing (``scripts/rabbitmq4 build``, about
    two minutes; its lines go to ``progress``); only a failed build is a reason.
    """
    flavour = flavour or nodes_flavour()
    if os.geteuid() != 0:
        return "private RabbitMQ nodes are started as root (the rabbitmq user owns them)"
    if flavour == HOST:
        if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
            return "rabbitmq-server is not installed"
        try:
            pwd.getpwnam("rabbitmq")
        except KeyError:
            return "there is no rabbitmq user"
        return None
    if rabbitmq4_built():
        return None
    if not _rabbitmq4_build_failure:
        _rabbitmq4_build_failure.append(_build_rabbitmq4(progress or (lambda line: None)))
    return _rabbitmq4_build_failure[0] or None


def rabbitmq4_built() -> bool:
    """Whether the chroot of ``scripts/rabbitmq4`` is complete."""
    server = RABBITMQ4_ROOT / "usr/lib/rabbitmq/bin/rabbitmq-server"
    return RABBITMQ4_MARKER.is_file() and os.access(server, os.X_OK)


def _build_rabbitmq4(progress: Callable[[str], None]) -> str:
    """Run ``scripts/rabbitmq4 build``, its lines to ``progress``; ``""`` or why it failed."""
    progress(f"[faults] building the RabbitMQ 4 chroot {RABBITMQ4_ROOT} (scripts/rabbitmq4 build)")
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(
        [str(RABBITMQ4_SCRIPT), "build"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_rabbitmq4_env({}),
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            progress(f"[faults] {line.rstrip()}")
    seconds = time.monotonic() - started
    if process.returncode != 0 or not rabbitmq4_built():
        return (
            f"the RabbitMQ 4 chroot could not be built (scripts/rabbitmq4 build exited "
            f"{process.returncode} after {seconds:.0f}s): " + " | ".join(lines[-5:])
        )
    progress(f"[faults] RabbitMQ 4 chroot built in {seconds:.0f}s")
    return ""


def nodes_version(flavour: str | None = None) -> str:
    """The RabbitMQ package nodes of ``flavour`` run (e.g. ``3.10.8-1``), without booting one."""
    flavour = flavour or nodes_flavour()
    if flavour == RABBITMQ4:
        if not rabbitmq4_built():
            return "unknown (no chroot yet)"
        return RABBITMQ4_MARKER.read_text().strip().removeprefix("rabbitmq-server ")
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _free_port(taken: Sequence[int] = ()) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def _rabbitmq4_env(extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, "RABBITMQ4_ROOT": str(RABBITMQ4_ROOT), **extra}


def _run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, str, str]:
    """Run a command in its own process group; on timeout kill the whole group.

    Raises:
        subprocess.TimeoutExpired: it took longer than ``timeout`` (it is killed).
    """
    with subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return process.returncode, out, err


class RabbitNode:
    """One private RabbitMQ node; :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`remove`.

    ``RabbitNode(...)`` builds a node of the flavour ``BURROWMQ_TEST_NODES`` asks for
    (:class:`Host310Node` or :class:`Rabbit4Node`), or of ``flavour`` when given.
    """

    flavour: str = ""

    def __new__(
        cls,
        *,
        conf: Sequence[str] = (),
        advanced_config: str | None = None,
        flavour: str | None = None,
    ) -> RabbitNode:
        if cls is RabbitNode:
            kind: type[RabbitNode] = (
                Rabbit4Node if (flavour or nodes_flavour()) == RABBITMQ4 else Host310Node
            )
            return super().__new__(kind)
        return super().__new__(cls)

    def __init__(
        self,
        *,
        conf: Sequence[str] = (),
        advanced_config: str | None = None,
        flavour: str | None = None,
    ) -> None:
        """A node not yet started.

        Args:
            conf: extra ``rabbitmq.conf`` lines (e.g. ``"consumer_timeout = 3000"``).
            advanced_config: the text of an ``advanced.config`` (Erlang terms), for
                settings ``rabbitmq.conf`` has no key for.
            flavour: ``host`` or ``rabbitmq4``; by default ``BURROWMQ_TEST_NODES``'s.
        """
        self.name = f"bmqfault{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port([self.port])
        self.boots: list[float] = []
        self._running = False

    # -- what differs between flavours ------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """The folder of the node's log files (as the host sees it)."""
        raise NotImplementedError

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> ARGS``; return its output.

        Raises:
            NodeError: the command failed.
        """
        raise NotImplementedError

    def start(self, timeout: float = 90.0) -> float:
        """Boot the node and wait until it serves AMQP; return the seconds it took.

        Raises:
            NodeError: it did not come up (the end of its log is in the message).
        """
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the node and wait for its OS process to exit (data is kept)."""
        raise NotImplementedError

    def remove(self) -> None:
        """Stop the node (killing it if need be) and delete its data."""
        raise NotImplementedError

    # -- the same for every flavour ---------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the node was started and not stopped since."""
        return self._running

    @property
    def url(self) -> str:
        """The AMQP URL of the node (guest may log in over loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

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

    def version(self) -> str:
        """The RabbitMQ version the running node reports (e.g. ``4.0.5``)."""
        return self.eval("rabbit_misc:version().").strip('"')

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's log, for failure messages."""
        log = self.log_dir / f"{self.name}.log"
        if not log.is_file():
            logs = sorted(self.log_dir.glob("*.log"))
            if not logs:
                return "(no log)"
            log = logs[0]
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} port {self.port}>"


class Host310Node(RabbitNode):
    """A node of the host's ``rabbitmq-server``, in a temporary folder of its own."""

    flavour = HOST

    def __init__(
        self,
        *,
        conf: Sequence[str] = (),
        advanced_config: str | None = None,
        flavour: str | None = None,
    ) -> None:
        super().__init__(conf=conf, advanced_config=advanced_config, flavour=flavour)
        self.home = Path(tempfile.mkdtemp(prefix="burrowmq-node-"))
        user = pwd.getpwnam("rabbitmq")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            + "".join(f"{line}\n" for line in (*BASE_CONF, *conf))
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
    def log_dir(self) -> Path:
        return self.home / "log"

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
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
        if not self._running:
            return
        self._running = False
        try:
            self.ctl("stop", str(self.pid_file), timeout=90)
        except NodeError:
            self._kill()

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

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


class Rabbit4Node(RabbitNode):
    """A RabbitMQ 4 node in the chroot of ``scripts/rabbitmq4``, which starts and stops it.

    Its data dir is ``/var/lib/burrowmq-node/<name>`` inside the chroot (wiped on the first
    start, kept by later ones); host files named in ``conf`` are copied next to it, into
    ``<name>.files``, and the lines rewritten to name the copies.
    """

    flavour = RABBITMQ4

    def __init__(
        self,
        *,
        conf: Sequence[str] = (),
        advanced_config: str | None = None,
        flavour: str | None = None,
    ) -> None:
        super().__init__(conf=conf, advanced_config=advanced_config, flavour=flavour)
        self.home = RABBITMQ4_ROOT / RABBITMQ4_NODE_DIRS.lstrip("/") / self.name
        self.files = self.home.with_name(f"{self.name}.files")
        self._conf = [self._in_chroot(line) for line in (*BASE_CONF, *conf)]
        self._advanced_config = advanced_config.strip() if advanced_config else "[]."
        self._env = _rabbitmq4_env(
            {
                "RABBITMQ4_NODENAME": self.name,
                "RABBITMQ4_PORT": str(self.port),
                "RABBITMQ4_DIST_PORT": str(self.dist_port),
                "RABBITMQ4_MGMT_PORT": "none",
                "RABBITMQ4_EXTRA_CONF": "\n".join(self._conf),
                "RABBITMQ4_ADVANCED_CONFIG": self._advanced_config,
            }
        )

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    def _in_chroot(self, line: str) -> str:
        """``line`` with a host file it names (``key = /path``) copied into the chroot."""
        key, sep, value = line.partition("=")
        path = Path(value.strip())
        if not sep or not path.is_absolute() or not path.is_file():
            return line
        if path.resolve().is_relative_to(RABBITMQ4_ROOT):
            return f"{key.strip()} = /{path.resolve().relative_to(RABBITMQ4_ROOT)}"
        self.files.mkdir(parents=True, exist_ok=True)
        copy = self.files / path.name
        shutil.copy2(path, copy)
        uid, gid = self._rabbit_ids()
        for owned in (self.files, copy):
            os.chown(owned, uid, gid)
        return f"{key.strip()} = /{copy.relative_to(RABBITMQ4_ROOT)}"

    @staticmethod
    def _rabbit_ids() -> tuple[int, int]:
        """uid and gid of the chroot's rabbitmq user (not the host's)."""
        for entry in (RABBITMQ4_ROOT / "etc/passwd").read_text().splitlines():
            fields = entry.split(":")
            if fields[0] == "rabbitmq":
                return int(fields[2]), int(fields[3])
        raise NodeError(f"no rabbitmq user in {RABBITMQ4_ROOT}")

    def _script(self, *args: str, timeout: float, extra: Mapping[str, str] | None = None) -> str:
        argv = [str(RABBITMQ4_SCRIPT), *args]
        try:
            code, out, err = _run(argv, {**self._env, **(extra or {})}, timeout)
        except subprocess.TimeoutExpired as exc:
            raise NodeError(
                f"scripts/rabbitmq4 {' '.join(args)} timed out after {timeout}s"
            ) from exc
        if code != 0:
            raise NodeError(
                f"scripts/rabbitmq4 {' '.join(args)} failed ({code}) for {self.name}: "
                f"{(err or out).strip()[-800:]}"
            )
        return out

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        return self._script("ctl", "-q", *args, timeout=timeout)

    def queues(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmq-queues -n <node> ARGS`` (e.g. ``quorum_status Q``); its output."""
        return self._script("queues", "-q", *args, timeout=timeout)

    def start(self, timeout: float = 90.0) -> float:
        started = time.monotonic()
        keep = {"RABBITMQ4_KEEP_DATA": "1" if self.boots else "0"}  # a restart keeps the data
        self._running = True
        try:
            self._script("start", timeout=timeout + 60, extra=keep)
        except NodeError as exc:
            raise NodeError(f"{exc}\n--- node log ---\n{self.log_tail()}") from None
        seconds = time.monotonic() - started
        self.boots.append(seconds)
        return seconds

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._script("stop", timeout=120)  # it kills what does not stop in time

    def remove(self) -> None:
        self._running = False
        try:
            self._script("remove", timeout=120)
        finally:
            shutil.rmtree(self.files, ignore_errors=True)
