"""pika's BlockingConnection: the synchronous client the issue measures us against.

consume: ``basic_qos(prefetch_count=256)``, ``basic_consume`` with a callback that
validates the :class:`~bench._common.Order` and ``basic_ack``\\ s each message.
publish: ``confirm_delivery()``, then ``basic_publish`` (which waits for the confirm)
one persistent message at a time. rpc: one call at a time over direct reply-to against
a blocking pika server (no concurrent calls: a BlockingConnection has no way to keep 64
in flight short of 64 threads).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from bench._common import URL, Order, make_order
from bench._proc import Window

REPLY_TO = "amq.rabbitmq.reply-to"


def _connect() -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(URL))


def consume(*, queue: str, count: int, prefetch: int, broker: int | None) -> dict[str, Any]:
    connection = _connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    seen = 0

    def on_message(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        nonlocal seen
        Order.model_validate_json(body)
        ch.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            ch.stop_consuming()

    with Window(broker) as window:
        channel.basic_consume(queue, on_message)
        channel.start_consuming()
    connection.close()
    return window.per_op(count)


def publish(*, queue: str, count: int, broker: int | None) -> dict[str, Any]:
    orders = [make_order(n) for n in range(count)]
    connection = _connect()
    channel = connection.channel()
    channel.confirm_delivery()
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    with Window(broker) as window:
        for order in orders:
            channel.basic_publish(
                "", queue, order.model_dump_json().encode(), properties, mandatory=True
            )
    connection.close()
    return window.per_op(count)


def rpc(*, queue: str, latency_calls: int, broker: int | None, **_: Any) -> dict[str, Any]:
    connection = _connect()
    channel = connection.channel()
    reply: list[bytes] = []

    def on_reply(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        reply.append(body)

    channel.basic_consume(REPLY_TO, on_reply, auto_ack=True)

    def call(n: int) -> None:
        order = make_order(n)
        channel.basic_publish(
            "",
            queue,
            order.model_dump_json().encode(),
            pika.BasicProperties(
                reply_to=REPLY_TO, correlation_id=str(n), content_type="application/json"
            ),
        )
        while not reply:
            connection.process_data_events(time_limit=None)
        assert Order.model_validate_json(reply.pop()).order_id == order.order_id

    for n in range(20):
        call(n)
    samples = []
    with Window(broker) as window:
        for n in range(latency_calls):
            started = time.perf_counter()
            call(n)
            samples.append((time.perf_counter() - started) * 1000)
    connection.close()
    samples.sort()
    figures = window.per_op(latency_calls)
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[max(0, int(len(samples) * 0.99) - 1)],
        "c1_client_us": figures["client_us"],
        "c1_broker_us": figures["broker_us"],
    }


def serve_rpc(*, queue: str, prefetch: int) -> None:
    """A blocking server: validate, reply, ack; stops when standard input closes."""
    connection = _connect()
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})

    def on_request(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        order = Order.model_validate_json(body)
        ch.basic_publish(
            "",
            properties.reply_to,
            order.model_dump_json().encode(),
            pika.BasicProperties(
                correlation_id=properties.correlation_id, content_type="application/json"
            ),
        )
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_request)

    def wait_for_eof() -> None:
        sys.stdin.read()
        connection.add_callback_threadsafe(channel.stop_consuming)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    print("ready", flush=True)
    channel.start_consuming()
    connection.close()


SCENARIOS = {"consume": consume, "publish": publish, "rpc": rpc}
SERVERS = {"pika": serve_rpc}
