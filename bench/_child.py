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
}


def scenarios(client: str) -> dict[str, Callable[..., Any]]:
    """The scenarios ``client`` implements (a variant's own, else its module's)."""
    module = importlib.import_module(MODULES[client])
    variants: dict[str, dict[str, Callable[..., Any]]] = getattr(module, "VARIANTS", {})
    table: dict[str, Callable[..., Any]] = variants.get(client, module.SCENARIOS)
    return table


def run(client: str, what: str, params: dict[str, Any]) -> Any:
    """Run the scenario (or server) ``what`` of ``client`` with ``params``."""
    if what == "serve":
        module = importlib.import_module(MODULES[client])
        function = module.SERVERS[client]
    else:
        function = scenarios(client)[what]
    result = function(**params)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


def main() -> None:
    client, what, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if client == "burrowmq":
        from burrowmq.framework.log import configure

        configure("warning")
    result = run(client, what, params)
    if what != "serve":
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
