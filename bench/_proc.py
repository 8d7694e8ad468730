"""CPU time from /proc: the client's own (getrusage) and the broker's (its /proc/<pid>/stat).

The broker is the process listening on the URL's TCP port: ``/proc/net/tcp`` (and
``tcp6``) list each socket with its local address, state and inode; the listening one
(state ``0A``) on that port gives an inode, and the process holding ``socket:[inode]``
among its ``/proc/<pid>/fd`` links is the broker (the RabbitMQ node's ``beam.smp``). This
finds the right node when several run on one machine, and needs no ``rabbitmqctl``.
Reading another user's fds needs root or the same user; where that fails,
:func:`broker_pid` returns None and broker CPU is reported as missing.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LISTEN = "0A"
TICKS = os.sysconf("SC_CLK_TCK")


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of a ``/proc/<pid>/stat`` file.

    The second field (the command) is in parentheses and may hold spaces or parentheses,
    so the fields are counted after the last ``)``: utime and stime are fields 14 and 15.
    """
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); fields 14 and 15 are rest[11] and rest[12].
    return int(rest[11]) + int(rest[12])


def listening_inodes(tcp_table: str, port: int) -> set[int]:
    """Inodes of the sockets listening on ``port`` in a ``/proc/net/tcp{,6}`` table."""
    inodes = set()
    for line in tcp_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local, state, inode = fields[1], fields[3], int(fields[9])
        if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port and inode:
            inodes.add(inode)
    return inodes


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return ""


def pid_holding(inodes: set[int], pids: Iterable[str] | None = None) -> int | None:
    """The first process with an open fd on one of the socket ``inodes``, or None."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids if pids is not None else os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return int(pid)
            except OSError:
                continue
    return None


def broker_pid(url: str) -> int | None:
    """The pid of the process listening on the port of the AMQP ``url``, or None."""
    port = urlsplit(url).port or 5672
    inodes = listening_inodes(_read("/proc/net/tcp"), port)
    inodes |= listening_inodes(_read("/proc/net/tcp6"), port)
    return pid_holding(inodes) if inodes else None


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used so far."""
    return stat_cpu_ticks(_read(f"/proc/{pid}/stat")) / TICKS


def own_cpu() -> float:
    """CPU seconds (user + system) this process has used so far, threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Window:
    """Wall clock, this process's CPU and the broker's CPU over a ``with`` block.

    Each client runs in its own process, so ``client_cpu`` holds that client alone; the
    broker is shared with whatever else runs on the machine, so ``broker_cpu`` is only
    as clean as the machine is quiet.
    """

    broker: int | None = None
    wall: float = 0.0
    client_cpu: float = 0.0
    broker_cpu: float | None = None

    def __enter__(self) -> Window:
        self._broker0 = process_cpu(self.broker) if self.broker else None
        self._cpu0 = own_cpu()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.client_cpu = own_cpu() - self._cpu0
        if self.broker and self._broker0 is not None:
            self.broker_cpu = process_cpu(self.broker) - self._broker0

    def per_op(self, ops: int) -> dict[str, float | None]:
        """The rate and the CPU µs per operation of ``ops`` operations in the window."""
        return {
            "ops": ops,
            "wall_s": self.wall,
            "rate": ops / self.wall if self.wall else 0.0,
            "client_us": self.client_cpu / ops * 1e6,
            "broker_us": self.broker_cpu / ops * 1e6 if self.broker_cpu is not None else None,
        }
