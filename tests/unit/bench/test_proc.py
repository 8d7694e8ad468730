"""The /proc parsing of bench._proc: CPU ticks from a stat line, listeners from a tcp table."""

from __future__ import annotations

import os

import pytest
from bench._proc import broker_pid, listening_inodes, own_cpu, process_cpu, stat_cpu_ticks

pytestmark = pytest.mark.unit

# A /proc/<pid>/stat line whose command holds a space and a parenthesis; utime 1234,
# stime 567 (fields 14 and 15).
STAT = (
    "2944 (beam (smp) x) S 1 2944 2944 0 -1 4194560 86 0 0 0 1234 567 0 0 20 0 "
    "98 0 4110 3221225472 27000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0"
)

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 5890 1 0
   1: 0100007F:9274 0100007F:1628 01 00000000:00000000 00:00000000 00000000     0        0 295008 3 0
   2: 0100007F:1628 0100007F:9274 01 00000000:00000000 00:00000000 00000000   106        0 295009 3 0
   3: 00000000:3D7C 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 5891 1 0
"""


class TestStatCpuTicks:
    def test_sums_utime_and_stime(self) -> None:
        """utime and stime are read after the last parenthesis of the command."""
        assert stat_cpu_ticks(STAT) == 1234 + 567

    def test_reads_this_process(self) -> None:
        """Our own /proc stat parses to a non-negative number of seconds."""
        assert process_cpu(os.getpid()) >= 0
        assert own_cpu() > 0


class TestListeningInodes:
    def test_only_the_listener_on_the_port(self) -> None:
        """Connected sockets on the port and listeners on other ports are left out."""
        assert listening_inodes(TCP, 5672) == {5890}
        assert listening_inodes(TCP, 15740) == {5891}

    def test_no_listener(self) -> None:
        """A port nobody listens on gives no inode."""
        assert listening_inodes(TCP, 1) == set()

    def test_unknown_port_has_no_broker(self) -> None:
        """broker_pid of a URL whose port nobody listens on is None."""
        assert broker_pid("amqp://guest:guest@127.0.0.1:1/") is None
