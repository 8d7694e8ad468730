"""Streams and super streams in the topology model and YAML; the partition of a key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from burrowmq import Stream, Topology, TopologyError
from burrowmq.topology.loader import parse_topology
from burrowmq.topology.model import partition_of


def _murmur3_32(data: bytes, seed: int) -> int:
    """MurmurHash3 x86 32-bit, written from the algorithm's description (a check on mmh3)."""
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed & mask
    c1, c2 = 0xCC9E2D51, 0x1B873593
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl((k * c1) & mask, 15) * c2 & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


class TestPartitionOf:
    """A key's partition is murmur3 (seed 104729) of its UTF-8, unsigned, modulo N."""

    def test_reference_hash_matches_published_vectors(self) -> None:
        """The test's own murmur3 gives the algorithm's published values."""
        assert _murmur3_32(b"", 0) == 0
        assert _murmur3_32(b"", 1) == 0x514E28B7
        assert _murmur3_32(b"hello", 0) == 0x248BFA47
        assert _murmur3_32(b"The quick brown fox jumps over the lazy dog", 0) == 0x2E4FF723

    @pytest.mark.parametrize("key", ["", "a", "ab", "abc", "order-42", "clé-ü", "キー", "x" * 37])
    @pytest.mark.parametrize("partitions", [1, 3, 6, 7])
    def test_agrees_with_the_reference(self, key: str, partitions: int) -> None:
        """partition_of() is the reference hash with seed 104729, unsigned, mod N."""
        expected = _murmur3_32(key.encode("utf-8"), 104729) % partitions
        assert partition_of(key, partitions) == expected

    def test_unsigned_not_absolute(self) -> None:
        """A hash above 2**31 is taken as unsigned (not negated, not masked)."""
        key = next(
            k for k in (f"k{i}" for i in range(1000)) if _murmur3_32(k.encode(), 104729) >= 2**31
        )
        value = _murmur3_32(key.encode(), 104729)
        assert partition_of(key, 7) == value % 7
        assert any(
            partition_of(f"k{i}", 7) != (_murmur3_32(f"k{i}".encode(), 104729) & 0x7FFFFFFF) % 7
            for i in range(1000)
        )

    def test_no_partitions_refused(self) -> None:
        """Zero partitions is a ValueError."""
        with pytest.raises(ValueError, match="at least one partition"):
            partition_of("a", 0)


class TestStream:
    """Stream(name, partitions=N) is RabbitMQ's super stream layout."""

    def test_super_stream_layout(self) -> None:
        """A direct exchange, streams name-0..N-1, keys "0".."N-1", partition order i."""
        topology = Topology()
        topology.add(Stream("orders", partitions=3, arguments={"x-max-age": "7D"}))
        (exchange,) = topology.exchanges
        assert (exchange.name, exchange.type) == ("orders", "direct")
        assert exchange.arguments == {"x-super-stream": True}
        assert [q.name for q in topology.queues] == ["orders-0", "orders-1", "orders-2"]
        assert all(
            q.arguments == {"x-max-age": "7D", "x-queue-type": "stream"} for q in topology.queues
        )
        assert [(b.destination, b.routing_key, b.arguments) for b in topology.bindings] == [
            (f"orders-{i}", str(i), {"x-stream-partition-order": i}) for i in range(3)
        ]
        assert topology.partition_keys("orders") == ("0", "1", "2")

    def test_plain_stream(self) -> None:
        """Without partitions: one stream queue, no exchange, no partitions."""
        topology = Topology()
        topology.add(Stream("events"))
        assert [(q.name, q.queue_type) for q in topology.queues] == [("events", "stream")]
        assert topology.exchanges == [] and topology.partition_keys("events") == ()

    @pytest.mark.parametrize("partitions", [0, -1, True])
    def test_bad_partitions(self, partitions: int) -> None:
        """Fewer than one partition (or a bool) is refused."""
        with pytest.raises(ValidationError):
            Stream(name="orders", partitions=partitions)


class TestYaml:
    """A stream queue with ``partitions`` in YAML is a super stream."""

    def test_partitions_key(self) -> None:
        """queues: [{name, arguments: {x-queue-type: stream}, partitions: 4}] expands."""
        loaded = parse_topology(
            "queues:\n"
            "  - name: orders\n"
            "    arguments: {x-queue-type: stream, x-max-age: 7D}\n"
            "    partitions: 4\n",
            file="t.yaml",
        )
        topology = loaded.topology
        assert [q.name for q in topology.queues] == [f"orders-{i}" for i in range(4)]
        assert topology.partition_keys("orders") == ("0", "1", "2", "3")
        assert topology.queues[0].arguments["x-max-age"] == "7D"

    @pytest.mark.parametrize(
        "queue", ["{name: o, partitions: 3}", "{name: o, type: stream, partitions: 0}"]
    )
    def test_partitions_need_a_stream(self, queue: str) -> None:
        """partitions on a non-stream queue, or below 1, is an error naming the line."""
        with pytest.raises(TopologyError, match=r"t.yaml:2: queues\[0\].partitions"):
            parse_topology(f"queues:\n  - {queue}\n", file="t.yaml")
