"""AsyncAPI: an App's machine-readable contract, an AsyncAPI 3.0 document.

Built from the App's routes, its topology and the pydantic models of its handlers; it
sits above the App (which it reads, never starts) and only the CLI imports it.
"""

from __future__ import annotations

from burrowmq.asyncapi.document import ASYNCAPI_VERSION, build_document, dump_document

__all__ = ["ASYNCAPI_VERSION", "build_document", "dump_document"]
