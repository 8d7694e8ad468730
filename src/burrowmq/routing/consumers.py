"""Consumers: a message route's pipeline and dispatcher, assembled from the App's settings.

The App hands its settings over as one :class:`ConsumerSettings`; a route's own
``retry``, ``prefetch`` and ``concurrency`` win over them. Stream routes get a
:class:`~burrowmq.routing.stream.StreamDispatcher`; a named stream consumer's runs inside a
:class:`~burrowmq.routing.leased.LeasedConsumer`, on one instance at a time. RPC routes
are assembled by :func:`burrowmq.rpc.server.rpc_servers` from the same settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from burrowmq.framework.builder import MessageBuilder
from burrowmq.framework.codecs import Codecs
from burrowmq.framework.instrument import Hooks
from burrowmq.framework.log import get_logger
from burrowmq.framework.middleware import Chain
from burrowmq.framework.transport import Transport
from burrowmq.routing.batch import BatchCollector
from burrowmq.routing.dead_letter import dead_letter_exchange
from burrowmq.routing.depends import Injection
from burrowmq.routing.dispatch import Consumer, Dispatcher
from burrowmq.routing.group import ConsumerGroup
from burrowmq.routing.lease import Lease
from burrowmq.routing.leased import LeasedConsumer
from burrowmq.routing.offsets import OffsetStore, OffsetTracker
from burrowmq.routing.pipeline import Pipeline
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import Route
from burrowmq.routing.settle import MessageSettle
from burrowmq.routing.stream import StreamDispatcher, StreamOptions, StreamSettle

__all__ = ["ConsumerSettings", "message_consumer", "stream_consumer"]

_log = get_logger()
LEASE_CHECK = 5.0
"""Seconds between a standby's checks that its stream lease still has a token."""


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """What every consumer of an App shares.

    Attributes:
        transport: where to consume and publish copies.
        builder: builds dead-letter, delay and reply messages.
        instance_id: names the per-instance queues of this App.
        retry: the retry policy of routes that set none.
        prefetch: the prefetch of routes that set none.
        concurrency: the concurrency of routes that set none.
        chain: the App's middleware, composed once (``None``: none).
        max_redeliveries: the poison-message limit (``None``: off).
        rpc_tracebacks: whether RPC error replies carry the handler's traceback.
        hooks: the App's instruments (``None``: none).
        declare: whether the App declares (else delay tiers must exist already).
        retry_waits: whether retries wait as their policy says; ``False`` (a
            :class:`~burrowmq.testing.TestClient` with ``fast_retries=True``) retries at
            once, in process, never through a delay queue.
        injection: what handlers' dependencies are bound to (the running App and its
            dependency overrides).
        codecs: the App's codecs (``None``: the built-in ones).
        drain: seconds a consumer group gives a partition's handlers before it hands
            the partition to another instance.
    """

    transport: Transport
    builder: MessageBuilder
    instance_id: str
    retry: Retry
    prefetch: int
    concurrency: int
    chain: Chain | None = None
    max_redeliveries: int | None = None
    rpc_tracebacks: bool = False
    hooks: Hooks | None = None
    declare: bool = True
    retry_waits: bool = True
    injection: Injection | None = None
    codecs: Codecs | None = None
    drain: float = 10.0


def message_consumer(route: Route, settings: ConsumerSettings) -> Consumer:
    """The dispatcher of a message route: its queue, through its pipeline, settled.

    A batch route runs ``size * concurrency`` workers (its concurrency counts batches,
    default 1), with a prefetch of at least as many, so that its batches can fill.
    """
    if route.stream is not None:
        return stream_consumer(route, route.stream, settings)
    queue = route.queue_name(settings.instance_id)
    base = route.dead_letter_base()
    settle = MessageSettle(
        settings.transport,
        settings.builder,
        dead_letter_exchange=dead_letter_exchange(base) if base else None,
        queue_type=route.queue.queue_type if route.queue is not None else "classic",
        declare=settings.declare,
    )
    retry = route.retry or settings.retry
    if not settings.retry_waits:
        retry = dataclasses.replace(retry, wait=0)
    concurrency = route.concurrency or settings.concurrency
    collector = None
    if route.batch is not None:
        collector = BatchCollector(
            route.spec,
            batch=route.batch,
            queue=queue,
            retry=retry,
            settle=settle,
            hooks=settings.hooks,
            timeout=route.timeout,
        )
        concurrency = route.batch.size * (route.concurrency or 1)
        if settings.chain is not None:
            _log.warning(
                "batch_without_middleware",
                handler=route.name,
                reason="middleware wraps one message; a batch handler runs without it",
            )
    pipeline = Pipeline(
        route.spec,
        queue=queue,
        retry=retry,
        settle=settle,
        chain=settings.chain,
        max_redeliveries=settings.max_redeliveries,
        hooks=settings.hooks,
        timeout=route.timeout,
        parameters=route.parameters,
        injection=settings.injection,
        codecs=settings.codecs,
        collect=None if collector is None else collector.join,
    )
    return Dispatcher(
        queue,
        pipeline.run,
        transport=settings.transport,
        prefetch=route.prefetch or settings.prefetch,
        concurrency=concurrency,
        name=route.name,
        context={"handler": route.name},
        hooks=settings.hooks,
    )


def stream_consumer(route: Route, stream: StreamOptions, settings: ConsumerSettings) -> Consumer:
    """The consumer of a stream route: from its offset or mark, failures to its dlq.

    A named consumer reads on one instance at a time: the holder of its lease.
    """
    queue = route.queue_name(settings.instance_id)
    if stream.consumer is None:
        return _stream_dispatcher(route, stream, settings, queue, None)
    parts = [_leased(route, stream, settings, name) for name in stream.streams(queue)]
    if stream.partitions is None:
        return parts[0]
    return ConsumerGroup(
        parts,
        settings.transport,
        members=stream.members_queue(queue),
        queue=queue,
        name=route.name,
        drain=settings.drain,
    )


def _leased(
    route: Route, stream: StreamOptions, settings: ConsumerSettings, queue: str
) -> LeasedConsumer:
    """The stream ``queue`` read while this instance holds its lease."""
    transport = settings.transport
    lease = Lease(
        stream.lease_queue(queue),
        transport,
        settings.builder,
        transport.clock,
        state=lambda: {"stream": queue, "consumer": stream.consumer},
        check_every=LEASE_CHECK,
    )
    return LeasedConsumer(
        lease,
        lambda: _stream_dispatcher(route, stream, settings, queue, lease),
        queue=queue,
        name=route.name,
    )


def _stream_dispatcher(
    route: Route,
    stream: StreamOptions,
    settings: ConsumerSettings,
    queue: str,
    lease: Lease | None,
) -> StreamDispatcher:
    """A stream dispatcher of ``queue`` that, given a lease, handles nothing once it is lost."""
    tracker = OffsetTracker()
    store = None
    wake = None
    if stream.consumer is not None:
        store = OffsetStore(settings.transport, settings.builder, queue, stream.consumer)
        wake = asyncio.Event()
    settle = StreamSettle(
        settings.transport,
        settings.builder,
        dead_letter_queue=stream.dead_letter_queue(route.queue_name(settings.instance_id)),
        tracker=tracker,
        wake=wake,
        lease=lease,
    )
    pipeline = Pipeline(
        route.spec,
        queue=queue,
        retry=route.retry or settings.retry,
        settle=settle,
        chain=settings.chain,
        hooks=settings.hooks,
        timeout=route.timeout,
        parameters=route.parameters,
        injection=settings.injection,
        codecs=settings.codecs,
    )
    return StreamDispatcher(
        queue,
        pipeline.run,
        settle=settle,
        tracker=tracker,
        store=store,
        offset=stream.offset,
        wake=wake,
        transport=settings.transport,
        prefetch=route.prefetch or settings.prefetch,
        # A log is read in order unless the route (or its router) says otherwise: the
        # App's concurrency, meant for work queues, does not apply.
        concurrency=route.concurrency or 1,
        name=route.name,
        context={"handler": route.name, "consumer": stream.consumer},
        hooks=settings.hooks,
    )
