"""Operations on a private node: a dead-letter replay killed halfway, readiness while the broker is down, a service without configure permission."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import aio_pika
import httpx
import pytest
from pydantic import BaseModel

from burrowmq import Retry, Router, TopologyError
from burrowmq.routing.delay import level_name
from tests.faults.node import RabbitNode
from tests.faults.ops_service import Job as OpsJob
from tests.faults.ops_service import least_privilege_app
from tests.faults.workload import drain, publish_all, queue_depth, wait_for
from tests.workers import BurrowmqProcess, start_worker

pytestmark = pytest.mark.faults


class Job(BaseModel):
    n: int


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_depth(
    channel: aio_pika.abc.AbstractChannel, queue: str, depth: int, timeout: float
) -> float:
    """Wait until ``queue`` holds at least ``depth`` ready messages; the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (now := await queue_depth(channel, queue)) < depth:
        if loop.time() - started > timeout:
            pytest.fail(f"{queue} holds {now} messages, not {depth}, after {timeout}s")
        await asyncio.sleep(0.05)
    return loop.time() - started


async def _peek_ids(connection: aio_pika.abc.AbstractConnection, queue: str) -> Counter[str]:
    """The message ids of every message ready in ``queue``, left in it (got unacked, then requeued)."""
    channel = await connection.channel()
    ids: Counter[str] = Counter()
    try:
        source = await channel.declare_queue(queue, passive=True)
        while (message := await source.get(no_ack=False, fail=False)) is not None:
            ids[str(message.message_id)] += 1
    finally:
        await channel.close()  # every message got goes back to the queue
    return ids


def _duplicates(*counts: Counter[str]) -> Counter[str]:
    """Ids held more than once across ``counts``, with how many copies beyond the first."""
    total: Counter[str] = Counter()
    for count in counts:
        total.update(count)
    return Counter({key: n - 1 for key, n in total.items() if n > 1})


class TestDlqReplayKilled:
    @pytest.mark.timeout(120)
    async def test_replay_killed_halfway_loses_nothing(
        self, make_app, names, amqp, node_url, tmp_path
    ) -> None:
        """``burrowmq dlq replay`` of 1,000 dead letters, killed with SIGKILL halfway, loses none: each is in the work queue or the DLQ, and a second replay moves the rest."""
        total = 1_000
        queue = names.queue("replay")
        dlq = f"{queue}.dlq"
        router = Router()

        @router.consume(queue, queue_options={}, retry=Retry(attempts=1))
        async def always_fails(job: Job) -> None:
            raise RuntimeError(f"job {job.n} cannot be done")

        failing = make_app(router, name="always-fails")
        publisher = make_app(name="dlq-filler")
        await failing.start()
        await publisher.start()
        began = time.monotonic()
        report = await publish_all(publisher, range(total), lambda n: Job(n=n), routing_key=queue)
        assert len(report.confirmed) == total
        await _wait_depth(amqp, dlq, total, 60)
        await failing.stop()
        await publisher.stop()
        filled = time.monotonic() - began
        assert await queue_depth(amqp, queue) == 0
        expected = {f"m{n}" for n in range(total)}

        # The first replay, killed once the work queue holds 400 messages.
        with BurrowmqProcess(
            tmp_path / "replay1.log",
            "dlq",
            "replay",
            queue,
            "--url",
            node_url,
            "--json",
        ) as replay:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while (at_kill := await queue_depth(amqp, queue)) < 400:
                assert replay.running(), (
                    f"the replay ended (exit {replay.process.returncode}) before it was killed, "
                    f"with {at_kill} replayed:\n{replay.output()[-2000:]}"
                )
                assert loop.time() < deadline, f"the replay moved only {at_kill} in 60s"
                await asyncio.sleep(0.005)
            replay.signal(signal.SIGKILL)
            code = await replay.exited(10)
        assert code == -signal.SIGKILL
        reported = [
            line["message_id"]
            for line in map(json.loads, replay.output().splitlines())
            if line.get("outcome") == "replayed"
        ]

        # The broker requeues what the dead replay held; wait until it let go of all.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            result = (await amqp.declare_queue(dlq, passive=True)).declaration_result
            in_work = await queue_depth(amqp, queue)
            if result.consumer_count == 0 and in_work + (result.message_count or 0) >= total:
                break
            assert loop.time() < deadline, "the DLQ did not get its dead letters back"
            await asyncio.sleep(0.05)
        connection = await aio_pika.connect(node_url)
        try:
            work_ids = await _peek_ids(connection, queue)
            dlq_ids = await _peek_ids(connection, dlq)
        finally:
            await connection.close()
        lost = expected - set(work_ids) - set(dlq_ids)
        duplicates = _duplicates(work_ids, dlq_ids)
        in_both = set(work_ids) & set(dlq_ids)
        # A duplicate is a copy confirmed in the work queue whose dead letter's ack never
        # reached the broker: the last ones the replay reported, or the one it was sending.
        tail = set(reported[-5:]) | (set(work_ids) - set(reported))
        unexplained = set(duplicates) - tail
        print(
            f"\n[dlq replay kill -9] filled {dlq} with {total} dead letters in {filled:.1f}s; "
            f"killed with {at_kill} in the work queue, {len(reported)} reported replayed; "
            f"after the kill: work queue {sum(work_ids.values())} "
            f"({len(work_ids)} ids), DLQ {sum(dlq_ids.values())} ({len(dlq_ids)} ids); "
            f"unique {len(set(work_ids) | set(dlq_ids))}, lost {len(lost)}, "
            f"duplicates {sum(duplicates.values())} {sorted(duplicates)} "
            f"(in both queues {len(in_both)}), not among the in-flight tail "
            f"{sorted(unexplained)}"
        )
        assert not lost, f"lost {len(lost)} dead letters, e.g. {sorted(lost)[:10]}"
        assert set(work_ids) | set(dlq_ids) == expected
        assert max(work_ids.values()) == 1 and max(dlq_ids.values()) == 1
        assert not unexplained, f"duplicates not in flight at the kill: {sorted(unexplained)}"
        # Acks are coalesced (one multiple-ack for what queued while the last was written),
        # so the kill can take the acks of the last few replayed messages with it: at most
        # the reported tail (5) and the one being sent.
        assert len(duplicates) <= 6, f"{len(duplicates)} duplicates: more than the in-flight"
        await _wait_depth(amqp, dlq, len(dlq_ids), 30)  # the peeked messages are back
        await _wait_depth(amqp, queue, len(work_ids), 30)

        # The second replay, to completion.
        began = time.monotonic()
        with BurrowmqProcess(
            tmp_path / "replay2.log",
            "dlq",
            "replay",
            queue,
            "--url",
            node_url,
            "--json",
        ) as second:
            code = await second.exited(60)
        resumed = time.monotonic() - began
        output = second.output()
        assert code == 0, output[-2000:]
        summary = json.loads(output.strip().splitlines()[-1])["summary"]
        final = Counter(str(m.message_id) for m in await drain(amqp, queue))
        left = await queue_depth(amqp, dlq)
        final_duplicates = _duplicates(final)
        print(
            f"[dlq replay resumed] second replay: {summary['replayed']} replayed, "
            f"{summary['kept']} kept in {resumed:.1f}s; work queue now {sum(final.values())} "
            f"messages, {len(final)} ids, duplicates {sum(final_duplicates.values())}; "
            f"DLQ {left}"
        )
        assert summary["replayed"] == sum(dlq_ids.values())
        assert summary["kept"] == 0
        assert set(final) == expected, f"missing {sorted(expected - set(final))[:10]}"
        assert final_duplicates == duplicates
        assert left == 0


async def _status(http: httpx.AsyncClient, path: str) -> tuple[int, dict[str, Any]]:
    response = await http.get(path)
    return response.status_code, response.json()


async def _wait_status(
    http: httpx.AsyncClient, path: str, status: int, timeout: float, child: BurrowmqProcess
) -> tuple[float, dict[str, Any]]:
    """Poll ``path`` until it answers ``status``; the seconds it took and the body."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    last: Any = None
    while True:
        assert child.running(), f"the service exited:\n{child.output()[-2000:]}"
        try:
            code, body = await _status(http, path)
        except httpx.TransportError as exc:
            last = exc
        else:
            if code == status:
                return loop.time() - started, body
            last = (code, body)
        if loop.time() - started > timeout:
            pytest.fail(f"{path} did not answer {status} within {timeout}s (last: {last!r})")
        await asyncio.sleep(0.1)


class TestReadiness:
    @pytest.mark.timeout(150)
    async def test_readyz_while_the_broker_is_down(
        self, node: RabbitNode, node_url, names, tmp_path
    ) -> None:
        """``/readyz`` of ``burrowmq run --http`` answers 503 naming the lost connection while the node is stopped, ``/healthz`` stays 200, and readiness returns once the node is back."""
        queue = names.queue("ops")
        port = _free_port()
        try:
            with start_worker(
                "tests.faults.ops_service:app",
                node_url,
                tmp_path / "service.log",
                "--http",
                f"127.0.0.1:{port}",
                BURROWMQ_OPS_QUEUE=queue,
            ) as service:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=5
                ) as http:
                    ready_in, body = await _wait_status(http, "/readyz", 200, 30, service)
                    assert body["ready"] and body["connected"] and body["problems"] == []
                    assert [c["queue"] for c in body["consumers"]] == [queue]
                    metrics = await http.get("/metrics")
                    assert metrics.status_code == 200 and "burrowmq_consumers" in metrics.text

                    stopping = time.monotonic()
                    stopper = asyncio.create_task(asyncio.to_thread(node.stop))
                    flipped, down = await _wait_status(http, "/readyz", 503, 60, service)
                    await stopper
                    stopped_in = time.monotonic() - stopping
                    # Down for a while: every probe keeps saying so.
                    samples = []
                    for _ in range(10):
                        samples.append(await _status(http, "/readyz"))
                        live, live_body = await _status(http, "/healthz")
                        assert live == 200 and live_body["live"], live_body
                        await asyncio.sleep(0.2)
                    assert all(code == 503 for code, _ in samples), [c for c, _ in samples]
                    last = samples[-1][1]
                    assert last["ready"] is False and last["connected"] is False
                    assert any("not connected" in p for p in last["problems"]), last["problems"]

                    starting = time.monotonic()
                    boot = await asyncio.to_thread(node.start)
                    back_in, again = await _wait_status(http, "/readyz", 200, 30, service)
                    assert again["connected"] and again["problems"] == []
                    assert all(c["consuming"] for c in again["consumers"])
                    since_start = time.monotonic() - starting

                    service.signal(signal.SIGTERM)
                    terminating = time.monotonic()
                    code = await service.exited(30)
                    exited_in = time.monotonic() - terminating
                print(
                    f"\n[readyz] ready {ready_in:.1f}s after launch; node stop took "
                    f"{stopped_in:.1f}s, /readyz 503 after {flipped:.1f}s with problems "
                    f"{down['problems']}; during the outage /readyz "
                    f"{sorted({c for c, _ in samples})}, /healthz 200; node boot {boot:.1f}s, "
                    f"/readyz 200 {back_in:.1f}s after it served ({since_start:.1f}s after the "
                    f"start began); SIGTERM: exit {code} in {exited_in:.1f}s"
                )
                assert code == 0, service.output()[-2000:]
        finally:
            if not node.running:
                node.start()


class TestLeastPrivilege:
    @pytest.mark.timeout(120)
    async def test_service_without_configure_permission(
        self, node: RabbitNode, node_url, names, amqp, tmp_path
    ) -> None:
        """A user with configure '^$' runs a declare=False service on a topology an operator applied: consume, publish, RPC, a retry down the delay ladder and dead-lettering work; declare=True fails naming the permission."""
        work = names.queue("work")
        doomed = names.queue("doomed")
        exchange = names.exchange("ex")
        tier = level_name(1)  # a 2 s wait: the ladder's level 1 (shared, not cleaned up)
        service = f"lp{uuid.uuid4().hex[:8]}"
        names.add_queue(f"rpc.{service}")
        user, password = f"svc-{uuid.uuid4().hex[:6]}", "svc-pass"
        svc_url = f"amqp://{user}:{password}@127.0.0.1:{node.port}/"
        node.ctl("add_user", user, password)
        try:
            node.ctl("set_permissions", "-p", "/", user, "^$", ".*", ".*")
            began = time.monotonic()
            with BurrowmqProcess(
                tmp_path / "apply.log",
                "topology",
                "apply",
                "tests.faults.ops_service:least_privilege_app",
                "--url",
                node_url,
                "--no-management",
                BURROWMQ_OPS_PREFIX=names.prefix,
                BURROWMQ_OPS_SERVICE=service,
            ) as applying:
                applied = await applying.exited(60)
            apply_seconds = time.monotonic() - began
            assert applied == 0, applying.output()
            for queue in (work, f"{work}.dlq", tier, doomed, f"{doomed}.dlq", f"rpc.{service}"):
                await amqp.declare_queue(queue, passive=True)
            for name in (exchange, f"{work}.dlx", f"{doomed}.dlx", "burrowmq.rpc"):
                await amqp.get_exchange(name, ensure=True)

            declaring = least_privilege_app(
                prefix=names.prefix, service=service, url=svc_url, declare=True
            )
            with pytest.raises(TopologyError) as refused:
                await declaring.start()
            await declaring.stop()
            assert "configure permission" in str(refused.value), str(refused.value)

            events: defaultdict[str, list[Any]] = defaultdict(list)
            stamps: defaultdict[str, list[float]] = defaultdict(list)

            def record(what: str, value: Any) -> None:
                events[what].append(value)
                stamps[what].append(time.monotonic())

            app = least_privilege_app(
                prefix=names.prefix, service=service, url=svc_url, declare=False, record=record
            )
            async with app:
                for n in range(5):
                    await app.publish("", OpsJob(n=n), routing_key=work)
                await app.publish("", OpsJob(n=99, flaky=True), routing_key=work)
                for n in (7, 8):
                    await app.publish(exchange, OpsJob(n=n), routing_key="doomed")
                reply = await app.call(
                    f"{service}.double", OpsJob(n=21), returns=OpsJob, timeout=10
                )
                await wait_for(lambda: (99, 1) in events["work"], 10, "the flaky job's attempt 1")
                parked = await _wait_depth(amqp, tier, 1, 5)
                await wait_for(lambda: len(events["done"]) >= 6, 15, "every work job done")
                await _wait_depth(amqp, f"{doomed}.dlq", 2, 10)
            first, second = (stamps["work"][i] for i, v in enumerate(events["work"]) if v[0] == 99)
            dead = await drain(amqp, f"{doomed}.dlq")
            dead_headers = [m.headers for m in dead]
            in_work_dlq = await queue_depth(amqp, f"{work}.dlq")
            print(
                f"\n[least privilege] {user} (configure '^$'): topology applied as guest in "
                f"{apply_seconds:.1f}s; declare=True refused: {refused.value}; declare=False: "
                f"work done {sorted(events['done'])}, flaky attempts "
                f"{[v for v in events['work'] if v[0] == 99]} {second - first:.2f}s apart "
                f"(parked in {tier} after "
                f"{parked:.2f}s), RPC double(21) = {reply.n}, dead letters "
                f"{[json.loads(m.body)['n'] for m in dead]} "
                f"({sorted({str(h.get('x-exception-type')) for h in dead_headers})})"
            )
            assert sorted(events["done"]) == [0, 1, 2, 3, 4, 99]
            assert [v for v in events["work"] if v[0] == 99] == [(99, 1), (99, 2)]
            assert second - first >= 1.9
            assert reply == OpsJob(n=42) and events["rpc"] == [21]
            assert sorted(events["doomed"]) == [7, 8]
            assert sorted(json.loads(m.body)["n"] for m in dead) == [7, 8]
            assert all(h.get("x-exception-type") == "ValueError" for h in dead_headers)
            assert in_work_dlq == 0
        finally:
            node.ctl("delete_user", user)
            connection = await aio_pika.connect(node_url)
            try:
                for remove in (
                    lambda c: c.queue_delete(f"rpc.{service}"),
                    lambda c: c.exchange_delete("burrowmq.rpc", if_unused=True),
                ):
                    with contextlib.suppress(Exception):
                        channel = await connection.channel()
                        await remove(channel)
                        await channel.close()
            finally:
                await connection.close()
