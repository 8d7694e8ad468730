"""Arguments: the AMQP arguments and policy keys RabbitMQ knows, with their types.

Used by the topology loader to check ``queues[].arguments``, ``exchanges[].arguments``
and ``policies[].definition`` before anything reaches a broker. Each check answers with
an error message (the value is wrong) or ``None``; some arguments also carry a warning
(they are deprecated, or ignored by RabbitMQ 4), and some are refused from a RabbitMQ
version on (the ``ha-*`` policy keys of classic queue mirroring, since 4.0).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from burrowmq.framework.vocabulary import QUEUE_TYPES

__all__ = [
    "EXCHANGE_ARGUMENTS",
    "POLICY_KEYS",
    "QUEUE_ARGUMENTS",
    "ArgumentRule",
    "check_argument",
    "likely_meant",
]


Check = Callable[[Any], str | None]

_MIRRORING = "classic queue mirroring was removed in RabbitMQ 4.0; use quorum queues or streams"
_LAZY = "queue mode is ignored since RabbitMQ 3.12 (every classic queue behaves lazily)"
_LOCATOR = (
    "queue-master-locator is deprecated since RabbitMQ 4.0 (use queue-leader-locator: "
    "client-local or balanced); newer releases refuse it unless the queue_master_locator "
    "deprecated feature is permitted"
)
_IN_MEMORY = "in-memory limits of quorum queues are ignored since RabbitMQ 3.10 and removed in 4.0"


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {_show(value)}"
        if value < minimum:
            what = "non-negative" if minimum == 0 else f">= {minimum}"
            return f"must be {what}, got {value}"
        if maximum is not None and value > maximum:
            return f"must be at most {maximum}, got {value}"
        return None

    return check


def _one_of(*choices: Any) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or value not in choices:
            return f"must be one of {', '.join(map(str, choices))}; got {_show(value)}"
        return None

    return check


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, got {_show(value)}"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {_show(value)}"


_AGE = re.compile(r"\d+(Y|M|D|h|m|s)")


def _age(value: Any) -> str | None:
    if isinstance(value, str) and _AGE.fullmatch(value):
        return None
    return f"must be a duration such as 7D, 12h or 30m (units Y M D h m s), got {_show(value)}"


def _anything(value: Any) -> str | None:
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


@dataclass(frozen=True, slots=True)
class ArgumentRule:
    """How one argument is checked.

    Attributes:
        check: returns an error message for a bad value, ``None`` for a good one.
        warning: said whenever the argument is used (deprecated or ignored), if any.
        removed_in: the RabbitMQ major version that refuses the argument, if any; on
            that version and later, ``warning`` becomes an error.
    """

    check: Check
    warning: str | None = None
    removed_in: int | None = None


_NON_NEGATIVE = ArgumentRule(_integer(0))
_POSITIVE = ArgumentRule(_integer(1))
_OVERFLOW = ArgumentRule(_one_of("drop-head", "reject-publish", "reject-publish-dlx"))
_DL_STRATEGY = ArgumentRule(_one_of("at-most-once", "at-least-once"))
_LEADER = ArgumentRule(_one_of("client-local", "balanced"))
_MASTER = ArgumentRule(_one_of("client-local", "min-masters", "random"), _LOCATOR)
_MODE = ArgumentRule(_one_of("default", "lazy"), _LAZY)
_STRING = ArgumentRule(_string)

QUEUE_ARGUMENTS: Mapping[str, ArgumentRule] = {
    "x-queue-type": ArgumentRule(_one_of(*QUEUE_TYPES)),
    "x-message-ttl": _NON_NEGATIVE,
    "x-expires": _POSITIVE,
    "x-max-length": _NON_NEGATIVE,
    "x-max-length-bytes": _NON_NEGATIVE,
    "x-max-priority": ArgumentRule(_integer(0, 255)),
    "x-delivery-limit": _NON_NEGATIVE,
    "x-overflow": _OVERFLOW,
    "x-dead-letter-exchange": _STRING,
    "x-dead-letter-routing-key": _STRING,
    "x-dead-letter-strategy": _DL_STRATEGY,
    "x-single-active-consumer": ArgumentRule(_boolean),
    "x-queue-mode": _MODE,
    "x-queue-version": ArgumentRule(_one_of(1, 2)),
    "x-queue-master-locator": _MASTER,
    "x-queue-leader-locator": _LEADER,
    "x-max-age": ArgumentRule(_age),
    "x-stream-max-segment-size-bytes": _POSITIVE,
    "x-stream-filter-size-bytes": ArgumentRule(_integer(16, 255)),
    "x-initial-cluster-size": _POSITIVE,
    "x-quorum-initial-group-size": _POSITIVE,
    "x-consumer-timeout": _NON_NEGATIVE,
    "x-max-in-memory-length": ArgumentRule(_integer(0), _IN_MEMORY),
    "x-max-in-memory-bytes": ArgumentRule(_integer(0), _IN_MEMORY),
}
"""Queue arguments RabbitMQ 3.10 to 4.x understands."""

EXCHANGE_ARGUMENTS: Mapping[str, ArgumentRule] = {
    "alternate-exchange": _STRING,
    "x-delayed-type": _STRING,  # the delayed-message plugin
}
"""Exchange arguments RabbitMQ (and its common plugins) understands."""

POLICY_KEYS: Mapping[str, ArgumentRule] = {
    "message-ttl": _NON_NEGATIVE,
    "expires": _POSITIVE,
    "max-length": _NON_NEGATIVE,
    "max-length-bytes": _NON_NEGATIVE,
    "delivery-limit": _NON_NEGATIVE,
    "overflow": _OVERFLOW,
    "dead-letter-exchange": _STRING,
    "dead-letter-routing-key": _STRING,
    "dead-letter-strategy": _DL_STRATEGY,
    "alternate-exchange": _STRING,
    "max-age": ArgumentRule(_age),
    "stream-max-segment-size-bytes": _POSITIVE,
    "queue-leader-locator": _LEADER,
    "queue-master-locator": _MASTER,
    "queue-mode": _MODE,
    "queue-version": ArgumentRule(_one_of(1, 2)),
    "consumer-timeout": _NON_NEGATIVE,
    "max-in-memory-length": ArgumentRule(_integer(0), _IN_MEMORY),
    "max-in-memory-bytes": ArgumentRule(_integer(0), _IN_MEMORY),
    "federation-upstream": _STRING,
    "federation-upstream-set": _STRING,
    # RabbitMQ 4 registers no validator for ha-* keys, so it refuses such policies as
    # "not recognised policy settings" (and its own import of them fails).
    "ha-mode": ArgumentRule(_one_of("all", "exactly", "nodes"), _MIRRORING, 4),
    "ha-params": ArgumentRule(_anything, _MIRRORING, 4),
    "ha-sync-mode": ArgumentRule(_one_of("manual", "automatic"), _MIRRORING, 4),
    "ha-sync-batch-size": ArgumentRule(_integer(1), _MIRRORING, 4),
    "ha-promote-on-shutdown": ArgumentRule(_one_of("when-synced", "always"), _MIRRORING, 4),
    "ha-promote-on-failure": ArgumentRule(_one_of("when-synced", "always"), _MIRRORING, 4),
}
"""Policy definition keys RabbitMQ 3.10 to 4.x understands (``ha-*`` only before 4.0)."""


def likely_meant(rules: Mapping[str, ArgumentRule], name: str) -> str | None:
    """The known argument an unknown ``name`` is most likely a typo of, if any.

    Close means a ``difflib`` ratio of 0.85 or more (``x-max-lenght`` for
    ``x-max-length``); an argument of a plugin, unlike any known name, gets ``None``.
    """
    matches = difflib.get_close_matches(name, list(rules), n=1, cutoff=0.85)
    return matches[0] if matches else None


def check_argument(
    rules: Mapping[str, ArgumentRule],
    name: str,
    value: Any,
    *,
    what: str = "argument",
    major: int = 4,
) -> tuple[str | None, str | None]:
    """Check one argument against ``rules``.

    Args:
        rules: one of :data:`QUEUE_ARGUMENTS`, :data:`EXCHANGE_ARGUMENTS`,
            :data:`POLICY_KEYS`.
        name: the argument's name.
        value: its value.
        what: how to call it in the warning about an unknown name.
        major: the major version of the target RabbitMQ.

    Returns:
        ``(error, warning)``: an error message when the value is wrong, the target
        refuses the argument, or the name is a likely typo of a known one ("did you
        mean"), a warning when the argument is unknown or deprecated; each
        ``None`` when there is nothing to say.
    """
    rule = rules.get(name)
    if rule is None:
        if (meant := likely_meant(rules, name)) is not None:
            # Almost certainly a typo: stored as is, it would silently do nothing.
            return f"not a {what} RabbitMQ knows: did you mean {meant}?", None
        return None, f"not a {what} RabbitMQ knows; it will be stored but has no effect"
    if rule.removed_in is not None and major >= rule.removed_in:
        refused = (
            f"{rule.warning} (RabbitMQ {rule.removed_in} refuses it; "
            'x-burrowmq.rabbitmq: "3.13" allows it for RabbitMQ 3)'
        )
        return rule.check(value) or refused, None
    return rule.check(value), rule.warning
