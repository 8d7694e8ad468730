"""Procedure: an RPC procedure name and where requests for it are routed.

A procedure is named ``<service>.<method>``: the method is the last dot-separated word,
the service everything before it (``pricing.quote``; ``billing.invoices.create`` is
method ``create`` of service ``billing.invoices``).

Requests go to the topic exchange :data:`RPC_EXCHANGE` with the procedure name as the
routing key. Each service has one durable queue (:func:`service_queue`, ``rpc.<service>``)
bound with ``<service>.*``, so that every method of a served service reaches its
servers: a method they lack is answered with an error reply instead of silently timing
out, and a service nobody serves makes the ``mandatory`` request come back at once.

This naming lives in ``routing`` (not ``rpc``) because the ``router.rpc`` decorator
builds the route, and routing must not import rpc.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from burrowmq.exceptions import ConfigurationError

__all__ = ["RPC_EXCHANGE", "RPC_EXCHANGE_TYPE", "RPC_QUEUE_PREFIX", "Procedure", "service_queue"]

RPC_EXCHANGE = "burrowmq.rpc"
"""The exchange every RPC request is published to."""

RPC_EXCHANGE_TYPE = "topic"
RPC_QUEUE_PREFIX = "rpc."

_WORD = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Procedure:
    """A parsed procedure name.

    Attributes:
        name: the full name, ``<service>.<method>``.
        service: every word but the last.
        method: the last word.
    """

    name: str
    service: str
    method: str

    @classmethod
    def parse(cls, name: str) -> Procedure:
        """Parse and check ``<service>.<method>``.

        Words are letters, digits, ``_`` and ``-`` (no ``*`` or ``#``: the name is a
        topic routing key).

        Raises:
            ConfigurationError: the name is not ``<service>.<method>``.
        """
        if not isinstance(name, str):
            raise ConfigurationError(f"a procedure name is a string, got {name!r}")
        words = name.split(".")
        if len(words) < 2 or not all(_WORD.fullmatch(word) for word in words):
            raise ConfigurationError(
                f"procedure names look like 'service.method' (words of letters, digits, "
                f"'_' and '-', joined by dots), got {name!r}"
            )
        if len(name.encode()) > 255:
            raise ConfigurationError(f"procedure name longer than 255 bytes: {name[:40]!r}...")
        return cls(name, ".".join(words[:-1]), words[-1])

    @property
    def binding_key(self) -> str:
        """The topic pattern binding the service queue: ``<service>.*``."""
        return f"{self.service}.*"

    @property
    def queue(self) -> str:
        """The service's default queue, ``rpc.<service>``."""
        return service_queue(self.service)


def service_queue(service: str) -> str:
    """The default queue of ``service``: ``rpc.<service>``."""
    return RPC_QUEUE_PREFIX + service
