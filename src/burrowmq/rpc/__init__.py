"""RPC: requests over a per-service queue, replies over direct reply-to.

Servers are declared with ``router.rpc("<service>.<method>")`` and run by the App; calls
are made with ``await app.call(...)``. The names here are for tools and tests that work
below the App. Imports routing and below; only the App imports it.
"""

from __future__ import annotations

from burrowmq.rpc.client import RpcClient
from burrowmq.rpc.protocol import ErrorEnvelope
from burrowmq.rpc.server import RpcServer

__all__ = ["ErrorEnvelope", "RpcClient", "RpcServer"]
