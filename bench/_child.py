"""One client, one scenario, in a fresh process: ``python -m bench._child CLIENT WHAT PARAMS``.

``WHAT`` is a scenario (consume, publish, batch, rpc): the figures are printed as one
JSON line on standard output. ``WHAT`` = ``serve`` runs the client's RPC server, prints
``ready`` and stops when standard input closes. ``PARAMS`` is a JSON object of keywords.
The client's module is imported here only, so no other client's import weighs on it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from typing import Any

MODULES = {
    "pika": "bench.clients.with_pika",
    "aiopika": "bench.clients.with_aiopika",
    "aiopika-patterns": "bench.clients.with_aiopika",
    "faststream": "bench.clients.with_faststream",
    "burrowmq": "bench.clients.with_burrowmq",
    "burrowmq-uvloop": "bench.clients.with_burrowmq",
}
UVLOOP = "-uvloop"
"""A client whose name ends so runs its own code on uvloop's event loop."""


def scenarios(client: str) -> dict[str, Callable[..., Any]]:
    """The scenarios ``client`` implements (a variant's own, else its module's)."""
    module = importlib.import_module(MODULES[client])
    variants: dict[str, dict[str, Callable[..., Any]]] = getattr(module, "VARIANTS", {})
    table: dict[str, Callable[..., Any]] = variants.get(client, module.SCENARIOS)
    return table


def run(client: str, what: str, params: dict[str, Any]) -> Any:
    """Run the scenario (or server) ``what`` of ``client`` with ``params``."""
    base = client.removesuffix(UVLOOP)
    if what == "serve":
        module = importlib.import_module(MODULES[client])
        function = module.SERVERS[base]
    else:
        function = scenarios(base)[what]
    result = function(**params)
    if not inspect.iscoroutine(result):
        return result
    if client.endswith(UVLOOP):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(result)
    return asyncio.run(result)


def main() -> None:
    client, what, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if client.startswith("burrowmq"):
        from burrowmq.framework.log import configure

        configure("warning")
    result = run(client, what, params)
    if what != "serve":
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
