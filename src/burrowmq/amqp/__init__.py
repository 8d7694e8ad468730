"""The AMQP transport: RabbitMQ through aio-pika, aiormq and pamqp.

The only package that imports those libraries; their errors are translated into
:mod:`burrowmq.exceptions` here, in one table. It depends on :mod:`burrowmq.framework`
alone and is chosen by the App (and by the ``topology apply`` command).
"""

from __future__ import annotations

from burrowmq.amqp.transport import AmqpTransport

__all__ = ["AmqpTransport"]
