"""`burrowmq publish`, `burrowmq dlq` and `burrowmq --version` against the real broker."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from burrowmq import Reject, Retry, Router

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BURROWMQ = str(Path(sys.executable).with_name("burrowmq"))


async def cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run `burrowmq ARGS` in a subprocess; its exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        BURROWMQ, *args, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    return process.returncode or 0, out.decode(), err.decode()


class TestVersion:
    async def test_version(self) -> None:
        """`burrowmq --version` prints the version."""
        code, out, _ = await cli("--version")
        assert code == 0
        assert out.startswith("burrowmq ")


class TestPublish:
    """`burrowmq publish` sends one confirmed message."""

    @pytest.mark.timeout(60)
    async def test_publish_json_file_and_stdin(
        self, broker_url: str, names: Any, make_app: Any, tmp_path: Path
    ) -> None:
        """JSON text, @file and stdin arrive with their headers; the printed ids are theirs."""
        queue = names.queue("published")
        got: list[tuple[Any, Any]] = []
        three = asyncio.Event()
        router = Router()

        @router.consume(queue, queue_options={})
        async def take(body: dict[str, Any], message: Any = None) -> None:
            got.append(body)
            if len(got) == 3:
                three.set()

        app = make_app(router)
        await app.start()
        body_file = tmp_path / "body.json"
        body_file.write_text('{"from": "file"}')
        ids = []
        for body, stdin in (
            ('{"from": "text"}', None),
            (f"@{body_file}", None),
            ("-", b'{"from": "stdin"}'),
        ):
            code, out, err = await cli(
                "publish", "", body, "--routing-key", queue, "-H", "n=7", "--url", broker_url,
                stdin=stdin,
            )  # fmt: skip
            assert code == 0, err
            ids.append(out.strip())
        await asyncio.wait_for(three.wait(), 20)
        assert sorted(b["from"] for b in got) == ["file", "stdin", "text"]
        assert len(set(ids)) == 3 and all(ids)

    async def test_unroutable_and_bad_json_fail_clearly(self, broker_url: str) -> None:
        """A message no queue takes, and a body that is not JSON, exit non-zero with one clear line."""
        code, _, err = await cli(
            "publish", "", '{"a": 1}', "--routing-key", "no.such.queue.anywhere", "--url", broker_url
        )  # fmt: skip
        assert code == 1
        assert "no queue is bound" in err and "Traceback" not in err
        code, _, err = await cli("publish", "", "{nope", "--url", broker_url)
        assert code == 2
        assert "not valid JSON" in err and "Traceback" not in err


class TestDlq:
    """`burrowmq dlq list|show|replay|purge` over AMQP."""

    @pytest.mark.timeout(90)
    async def test_list_show_replay_purge(self, broker_url: str, names: Any, make_app: Any) -> None:
        """Five dead letters: listed (and kept), one shown, the two Rejects replayed to the work queue, the rest purged."""
        queue = names.queue("failing")
        names.add_queue(f"{queue}.dlq")
        router = Router()
        settled = asyncio.Event()
        seen: list[int] = []

        @router.consume(queue, queue_options={}, retry=Retry(attempts=1))
        async def fail(body: dict[str, int]) -> None:
            seen.append(body["n"])
            if len(seen) == 5:
                settled.set()
            if body["n"] % 2:
                raise Reject("odd numbers are refused")
            raise ValueError(f"cannot take {body['n']}")

        app = make_app(router)
        await app.start()
        for n in range(5):
            await app.publish("", {"n": n}, routing_key=queue, message_id=f"m-{n}")
        await asyncio.wait_for(settled.wait(), 20)
        await asyncio.sleep(0.5)
        await app.stop()  # nothing consumes the work queue now

        code, out, err = await cli("dlq", "list", queue, "--json", "--url", broker_url)
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        assert sorted(r["message_id"] for r in rows) == [f"m-{n}" for n in range(5)]
        assert sorted(r["exception_type"] for r in rows) == ["Reject"] * 2 + ["ValueError"] * 3
        code, out, err = await cli("dlq", "list", queue, "--url", broker_url)
        assert code == 0 and "5 dead letters" in out, out + err

        code, out, err = await cli("dlq", "show", queue, "m-2", "--url", broker_url)
        assert code == 0, err
        shown = json.loads(out)
        assert shown["exception_message"] == "cannot take 2"
        assert json.loads(shown["body"]) == {"n": 2}
        code, _, err = await cli("dlq", "show", queue, "m-404", "--url", broker_url)
        assert code == 1 and "no dead letter 'm-404'" in err

        code, out, err = await cli(
            "dlq", "replay", queue, "--where", "exception-type=Reject", "--json", "--url", broker_url
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out.splitlines()[-1])["summary"]["replayed"] == 2

        import aio_pika

        connection = await aio_pika.connect(broker_url)
        try:
            channel = await connection.channel()
            work = await channel.declare_queue(queue, passive=True)
            dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
            assert (
                work.declaration_result.message_count,
                dlq.declaration_result.message_count,
            ) == (2, 3)
            replayed = [await work.get() for _ in range(2)]
            for message in replayed:
                assert message.headers.get("x-replayed-from") == f"{queue}.dlq"
                assert "x-exception-type" not in message.headers
                await message.ack()
            assert sorted(json.loads(m.body)["n"] for m in replayed) == [1, 3]
        finally:
            await connection.close()

        code, _, err = await cli("dlq", "purge", queue, "--url", broker_url)
        assert code == 2 and "--yes" in err
        code, out, err = await cli("dlq", "purge", queue, "--yes", "--url", broker_url)
        assert code == 0, err
        assert "3 dead letters purged" in out
