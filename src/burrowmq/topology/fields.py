"""Fields: what each entity of a topology document may hold, and the kind of each value.

The schema of RabbitMQ's definitions format as burrowmq checks it (``exchanges``,
``queues``, ``bindings``, ``policies``), with the one-line reason a value is refused.
"""

from __future__ import annotations

from typing import Any, Literal

from burrowmq.framework.vocabulary import EXCHANGE_TYPES

__all__ = ["APPLY_TO", "FIELDS", "REQUIRED", "describe", "kind_error"]

APPLY_TO = ("all", "exchanges", "queues", "classic_queues", "quorum_queues", "streams")

_Kind = Literal["name", "str", "bool", "int", "map", "type", "destination_type", "apply-to"]

_EXCHANGE_FIELDS: dict[str, _Kind] = {
    "name": "str",  # "" is the default exchange: skipped with a warning, as RabbitMQ does
    "vhost": "str",
    "type": "type",
    "durable": "bool",
    "auto_delete": "bool",
    "internal": "bool",
    "arguments": "map",
}
_QUEUE_FIELDS: dict[str, _Kind] = {
    "name": "name",
    "vhost": "str",
    "durable": "bool",
    "auto_delete": "bool",
    "exclusive": "bool",
    "arguments": "map",
    "type": "str",
    "partitions": "int",  # burrowmq's: a super stream of that many partitions
}
_BINDING_FIELDS: dict[str, _Kind] = {
    "source": "str",
    "destination": "name",
    "destination_type": "destination_type",
    "routing_key": "str",
    "arguments": "map",
    "vhost": "str",
}
_POLICY_FIELDS: dict[str, _Kind] = {
    "name": "name",
    "pattern": "str",
    "apply-to": "apply-to",
    "priority": "int",
    "definition": "map",
    "vhost": "str",
}
REQUIRED = {  # the keys each entity must have
    "exchanges": ("name",),
    "queues": ("name",),
    "bindings": ("source", "destination"),
    "policies": ("name", "pattern", "definition"),
}
FIELDS = {
    "exchanges": _EXCHANGE_FIELDS,
    "queues": _QUEUE_FIELDS,
    "bindings": _BINDING_FIELDS,
    "policies": _POLICY_FIELDS,
}


def kind_error(kind: _Kind, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (e.g. ``must be an integer, got '10'``), or ``None``."""
    if kind in ("name", "str"):
        if not isinstance(value, str):
            return f"must be a string, got {describe(value)}"
        if kind == "name" and not value:
            return "must not be empty"
        if len(value.encode()) > 255:
            return "must be at most 255 bytes long"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"must be true or false, got {describe(value)}"
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {describe(value)}"
    elif kind == "map":
        if not isinstance(value, dict):
            return f"must be a mapping, got {describe(value)}"
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            return f"keys must be strings, got {describe(bad[0])}"
    elif kind == "type":
        if not isinstance(value, str) or (
            value not in EXCHANGE_TYPES and not value.startswith("x-")
        ):
            return (
                f"must be one of direct, fanout, topic, headers (or a plugin's x-... type), "
                f"got {describe(value)}"
            )
    elif kind == "destination_type":
        if value not in ("queue", "exchange") or isinstance(value, bool):
            return f"must be queue or exchange, got {describe(value)}"
    elif value not in APPLY_TO or isinstance(value, bool):
        return f"must be one of {', '.join(APPLY_TO)}, got {describe(value)}"
    return None


def describe(value: Any) -> str:
    """A value as a message shows it: YAML's ``true``/``null``, "a mapping", or its repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
