"""Routing-key parameters: ``{name}`` words in a route's key, passed to its handler.

``@router.topic("logs", "logs.{level}.#")`` binds ``logs.*.#`` and passes the word the
``{level}`` stands for to the handler's ``level`` parameter, validated by its
annotation (``str``, ``int``, an ``Enum``, any type pydantic validates). Limits, by
design:

- a parameter captures exactly one word (``*``), never several (``#``);
- ``{name}`` is a whole word between dots (``logs.{level}``, not ``logs.x{level}``);
- a parameter with ``#`` on both sides (``#.{name}.#``) is refused: which word it
  captures would be ambiguous;
- every key of one route names the same parameters, each once.

Each pattern is compiled once, when the route is made; a delivery costs one regular
expression match on its routing key (and a validation for parameters not typed
``str``). Routes without parameters have no plan and do none of this.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from burrowmq.exceptions import ConfigurationError, DecodeError

__all__ = ["KeyParameters", "KeyPattern"]

_NAME = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class KeyPattern:
    """A routing key with ``{name}`` words, parsed.

    Attributes:
        source: the key as written (``"logs.{level}.#"``).
        binding: the key the queue is bound with (``"logs.*.#"``).
        names: the parameters, in order of appearance.
        regex: matches ``"." + routing_key`` (``""`` for the empty key, which has no
            words) and captures each parameter's word.
    """

    source: str
    binding: str
    names: tuple[str, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, key: str) -> KeyPattern:
        """Parse ``key``, a topic pattern (or a plain key) with ``{name}`` words.

        Raises:
            ConfigurationError: a brace that is not a whole ``{name}`` word, a name that
                is not an identifier or appears twice, or a parameter between two ``#``.
        """
        words = key.split(".")
        names: list[str] = []
        binding: list[str] = []
        regex: list[str] = []
        for word in words:
            match = _NAME.fullmatch(word)
            if match is None:
                if "{" in word or "}" in word:
                    raise ConfigurationError(
                        f"routing key {key!r}: a parameter is a whole word between dots, "
                        f"like 'logs.{{level}}.#'; {word!r} is not"
                    )
                binding.append(word)
                regex.append(
                    r"(?:\.[^.]*)*"
                    if word == "#"
                    else r"\.[^.]*"
                    if word == "*"
                    else r"\." + re.escape(word)
                )
                continue
            name = match.group(1)
            if not name.isidentifier():
                raise ConfigurationError(
                    f"routing key {key!r}: parameter {{{name}}} must be a Python identifier"
                )
            if name in names:
                raise ConfigurationError(f"routing key {key!r}: parameter {{{name}}} appears twice")
            names.append(name)
            binding.append("*")
            regex.append(rf"\.(?P<{name}>[^.]*)")
        for index, word in enumerate(words):
            if _NAME.fullmatch(word) and "#" in words[:index] and "#" in words[index + 1 :]:
                raise ConfigurationError(
                    f"routing key {key!r}: parameter {word} has '#' on both sides, so the "
                    "word it captures would be ambiguous"
                )
        return cls(key, ".".join(binding), tuple(names), re.compile("".join(regex)))

    @property
    def has_parameters(self) -> bool:
        """Whether the key names any parameter."""
        return bool(self.names)


def parse_keys(keys: Sequence[str], *, what: str) -> tuple[KeyPattern, ...]:
    """Parse a route's keys; they name the same parameters, or none of them does.

    Raises:
        ConfigurationError: a malformed key, or keys naming different parameters.
    """
    patterns = tuple(KeyPattern.parse(key) for key in keys)
    first = set(patterns[0].names)
    for pattern in patterns[1:]:
        if set(pattern.names) != first:
            raise ConfigurationError(
                f"{what} {pattern.source!r} names parameters {sorted(pattern.names)}, "
                f"but {patterns[0].source!r} names {sorted(first)}: every key of a route "
                "names the same parameters"
            )
    return patterns


class KeyParameters:
    """A route's plan for its routing-key parameters: match, capture, validate.

    Args:
        patterns: the route's keys with parameters (they name the same ones).
        types: each parameter's annotation (``str`` needs no validation).
    """

    __slots__ = ("_adapters", "_patterns", "_sources", "names")

    def __init__(self, patterns: Sequence[KeyPattern], types: Mapping[str, Any]) -> None:
        self._patterns = tuple(p.regex for p in patterns)
        self._sources = ", ".join(repr(p.source) for p in patterns)
        self.names = patterns[0].names
        self._adapters = tuple(
            (name, _validator(kind), kind)
            for name, kind in types.items()
            if kind is not str and kind is not Any
        )

    def extract(self, routing_key: str) -> dict[str, Any]:
        """The parameters' values in ``routing_key``, validated by their annotations.

        Raises:
            DecodeError: the key does not match any of the route's patterns (it reached
                the queue some other way), or a word does not validate; the reason
                names the parameter.
        """
        subject = "." + routing_key if routing_key else ""  # "" is zero words, as RabbitMQ has it
        for regex in self._patterns:
            match = regex.fullmatch(subject)
            if match is not None:
                break
        else:
            raise DecodeError(
                f"routing key {routing_key!r} does not match {self._sources}, so the "
                f"routing key parameters {', '.join(self.names)} have no value"
            )
        words: dict[str, Any] = match.groupdict()
        for name, adapter, kind in self._adapters:
            word = words[name]
            try:
                words[name] = adapter(word)
            except ValidationError as exc:
                problem = exc.errors(include_url=False)[0].get("msg", "invalid")
                raise DecodeError(
                    f"routing key parameter {name!r}: {word!r} is not a valid "
                    f"{getattr(kind, '__name__', kind)}: {problem}",
                    errors=[{"loc": ["routing_key", name], "input": word, "msg": problem}],
                ) from None
        return words


def _validator(kind: Any) -> Callable[[str], Any]:
    """Turns a word into a value of ``kind``: pydantic's lax validation, except that a
    ``Literal`` compares words with its values written out (``Literal[1, 2]`` takes
    ``"1"``, which pydantic alone refuses)."""
    validate = TypeAdapter(kind).validate_python
    if typing.get_origin(kind) is not typing.Literal:
        return validate
    values = {str(value): value for value in typing.get_args(kind)}

    def literal(word: str) -> Any:
        return values[word] if word in values else validate(word)

    return literal
