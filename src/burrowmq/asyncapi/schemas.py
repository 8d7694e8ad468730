"""Schemas: the JSON Schemas of payloads, collected into ``components/schemas``.

A payload's schema comes from its annotation, the way burrowmq encodes it on the wire:
``bytes`` are a binary string, ``str`` text, anything else JSON, described by pydantic
(``TypeAdapter(annotation).json_schema()``, so a model, ``list[Model]``, ``dict`` and
any type pydantic validates). A model becomes a component named after it and is
referenced; pydantic's ``$defs`` are lifted into the components, with their ``$ref``
rewritten to ``#/components/schemas/<name>``. Requests are described as they are
validated, replies as they are serialised; where a model's two forms differ, the second
one met is named ``<name>-Input`` or ``<name>-Output``, as pydantic names them.

pydantic writes JSON Schema 2020-12; the few keywords AsyncAPI's schema format (JSON
Schema draft 07) reads differently are translated: ``prefixItems`` (tuples) becomes the
array form of ``items``, an OpenAPI ``discriminator`` object its property name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from burrowmq.framework.codec import JSON, OCTET_STREAM, TEXT

__all__ = ["COMPONENT_REF", "Mode", "Schemas", "content_type_of"]

COMPONENT_REF = "#/components/schemas/"
Mode = Literal["validation", "serialization"]
_SUFFIX: dict[str, str] = {"validation": "-Input", "serialization": "-Output"}


def content_type_of(annotation: Any) -> str:
    """The content type burrowmq sends a value of ``annotation`` with."""
    if annotation is bytes:
        return OCTET_STREAM
    if annotation is str:
        return TEXT
    return JSON


class Schemas:
    """The schemas of one document: what is referenced, under which name."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def payload(self, annotation: Any, mode: Mode = "validation") -> dict[str, Any]:
        """The schema of a payload annotated ``annotation``: a ``$ref`` or inline.

        Args:
            annotation: the handler's payload (or return) annotation; ``Any`` (no
                annotation) is any JSON value, ``None`` JSON ``null``.
            mode: ``validation`` for what is received, ``serialization`` for what is sent.
        """
        if annotation is bytes:
            return {"type": "string", "format": "binary"}
        if annotation is str:
            return {"type": "string"}
        if annotation is Any:
            return {}
        if annotation is None or annotation is type(None):
            return {"type": "null"}
        schema = self._generate(annotation, mode, "")
        if self._collides(schema, mode, ""):
            schema = self._generate(annotation, mode, _SUFFIX[mode])
        defs: dict[str, Any] = schema.pop("$defs", {})
        for name, definition in defs.items():
            self._store(name, definition)
        if set(schema) == {"$ref"}:  # a model that refers to itself: it is in $defs
            return schema
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            name = self._name_of(annotation, schema, mode)
            self._store(name, schema)
            return {"$ref": COMPONENT_REF + name}
        return schema

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Store a schema burrowmq defines (headers, envelopes); return its ``$ref``."""
        translated: dict[str, Any] = _translate(schema)
        self._store(name, translated)
        return {"$ref": COMPONENT_REF + name}

    def _name_of(self, model: type[BaseModel], schema: dict[str, Any], mode: Mode) -> str:
        name = str(schema.get("title") or model.__name__)
        existing = self.components.get(name)
        if existing is not None and existing != schema:
            return name + _SUFFIX[mode]
        return name

    @staticmethod
    def _generate(annotation: Any, mode: Mode, suffix: str) -> dict[str, Any]:
        schema = TypeAdapter(annotation).json_schema(
            mode=mode, ref_template=COMPONENT_REF + "{model}" + suffix
        )
        if suffix:
            schema["$defs"] = {k + suffix: v for k, v in schema.get("$defs", {}).items()}
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                schema["title"] = str(schema.get("title") or annotation.__name__) + suffix
        translated: dict[str, Any] = _translate(schema)
        return translated

    def _collides(self, schema: dict[str, Any], mode: Mode, suffix: str) -> bool:
        """Whether a definition of ``schema`` differs from a stored one of its name."""
        defs: dict[str, Any] = schema.get("$defs", {})
        return any(
            name + suffix in self.components and self.components[name + suffix] != d
            for name, d in defs.items()
        )

    def _store(self, name: str, schema: dict[str, Any]) -> None:
        self.components.setdefault(name, schema)


_DATA = frozenset({"const", "default", "enum", "example", "examples"})
_NAMED = frozenset({"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"})


def _translate(node: Any) -> Any:
    """A copy of the schema ``node`` in the words of AsyncAPI's schema format (JSON Schema 07)."""
    if isinstance(node, list):
        return [_translate(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DATA:
            out[key] = value  # data, not schemas
        elif key in _NAMED and isinstance(value, dict):
            out[key] = {name: _translate(schema) for name, schema in value.items()}
        else:
            out[key] = _translate(value)
    if "prefixItems" in out:
        out["items"] = out.pop("prefixItems")
    discriminator = out.get("discriminator")
    if isinstance(discriminator, dict):
        out["discriminator"] = discriminator.get("propertyName")
        if out["discriminator"] is None:
            del out["discriminator"]
    return out
