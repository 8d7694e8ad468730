"""Loader: topology from YAML files or RabbitMQ definitions JSON, checked line by line.

Only safe YAML loading is used (a JSON definitions export is read the same way: JSON is
YAML, once Python's JSON parser found it well-formed; malformed JSON is reported as
``FILE:LINE:COLUMN: not valid JSON: ...``). Every problem is reported as
``FILE:LINE: key.path[3].x: message`` (list indexes count from 0); all of them are
collected before one :class:`~burrowmq.TopologyError` lists them in its ``errors``.
Warnings (deprecated arguments, RabbitMQ 4 hazards, what is skipped) come back
separately, in :attr:`LoadedTopology.warnings`.

Any definitions file that RabbitMQ itself imports loads (see
:mod:`burrowmq.topology.definitions`): ``amq.*`` exchanges and queues, and names AMQP
cannot declare, are skipped with a warning, as are the bindings to them; alternate and
dead-letter exchanges missing from the file are warnings; a file of several virtual hosts
loads one, chosen with ``vhost=``. Besides ``exchanges``, ``queues``, ``bindings`` and
``policies``, the top-level keys of a definitions export (``users``, ``vhosts``,
``permissions``, ``parameters``, ...) are accepted and ignored. burrowmq's own settings
live under one key, ``x-burrowmq``::

    x-burrowmq:
      version: 1                   # the format version; only 1 exists
      default_queue_type: quorum   # x-queue-type of queues that set none
      rabbitmq: "4.0"              # the target broker: "3.10" ... "3.13", "4.0", "4.1", ...

``rabbitmq`` (a quoted string; the default is RabbitMQ 4) decides what the target refuses:
for RabbitMQ 4, non-durable non-exclusive queues and ``ha-*`` policy keys are errors; for
``"3.10"`` to ``"3.13"`` they are warnings, as RabbitMQ 3 declares them (deprecated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from burrowmq.exceptions import TopologyError, TopologyProblem
from burrowmq.topology.document import JsonProblem, NotJson, is_json, read_document, strip_bom
from burrowmq.topology.model import Topology
from burrowmq.topology.validation import DEFINITIONS_KEYS, EXTENSION_KEY, Settings, check_document

__all__ = [
    "DEFINITIONS_KEYS",
    "EXTENSION_KEY",
    "LoadedTopology",
    "Settings",
    "load_topology",
    "merge_with",
    "parse_topology",
    "read_topology",
]


@dataclass(frozen=True, slots=True)
class LoadedTopology:
    """What a topology file holds, once checked.

    Attributes:
        topology: the exchanges, queues, bindings and policies.
        settings: the ``x-burrowmq`` settings.
        warnings: what is legal but worth a look (deprecated arguments, RabbitMQ 4
            hazards), each with file, line and key path.
    """

    topology: Topology
    settings: Settings
    warnings: tuple[TopologyProblem, ...]


def _failure(file: str, errors: tuple[TopologyProblem, ...]) -> TopologyError:
    count = f"{len(errors)} problems" if len(errors) > 1 else "1 problem"
    message = f"{file}: {count}\n" + "\n".join(str(e) for e in errors)
    first = errors[0]
    return TopologyError(message, source=f"{first.file}:{first.line}", errors=errors)


def parse_topology(
    text: str,
    *,
    file: str = "<string>",
    known: Topology | None = None,
    vhost: str | None = None,
) -> LoadedTopology:
    """Check and load a topology from YAML or definitions JSON text.

    Text is read as JSON when ``file`` ends in ``.json``, or when it starts with ``{``
    and ``file`` does not end in ``.yaml`` or ``.yml``.

    Args:
        text: the YAML or JSON text.
        file: the name to report problems under.
        known: entities declared elsewhere (an App's routes, say): bindings and
            dead-letter exchanges may refer to them.
        vhost: the virtual host to load when the entities name several (a definitions
            export of a whole broker); entities that name none belong to every one.

    Returns:
        The topology, the ``x-burrowmq`` settings and the warnings.

    Raises:
        TopologyError: one or more problems; ``errors`` lists every one.
    """
    try:
        data = read_document(text, json_text=is_json(text, file))
    except NotJson as exc:
        problem: TopologyProblem = JsonProblem(
            file, exc.line, "", f"not valid JSON: {exc.reason}", exc.column
        )
        raise _failure(file, (problem,)) from None
    except yaml.MarkedYAMLError as exc:
        problem = _yaml_problem(file, exc)
        raise _failure(file, (problem,)) from None
    except yaml.YAMLError as exc:
        problem = TopologyProblem(file, 1, "", f"not valid YAML: {exc}")
        raise _failure(file, (problem,)) from None
    checked = check_document(data, file=file, known=known, vhost=vhost)
    if checked.errors or checked.topology is None:
        raise _failure(file, checked.errors)
    return LoadedTopology(checked.topology, checked.settings, checked.warnings)


_OPENERS = {"flow mapping": "{", "flow sequence": "["}


def _yaml_problem(file: str, exc: yaml.MarkedYAMLError) -> TopologyProblem:
    """Where a YAML syntax error is, for the person who has to fix it.

    PyYAML marks where it gave up (``problem_mark``, often the line after an unclosed
    bracket, or the end of the file) and what it was inside (``context_mark``). An
    unclosed ``{`` or ``[`` is fixed where it opened, so that line is the one named.
    """
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    reason = exc.problem or exc.context or "cannot be parsed"
    context = exc.context or ""
    opener = next((b for kind, b in _OPENERS.items() if kind in context), None)
    if opener is not None and exc.context_mark is not None:
        line = exc.context_mark.line + 1
        column = exc.context_mark.column + 1
        message = f"not valid YAML: the '{opener}' opened at column {column} is not closed"
        if problem_line is not None and problem_line != line:
            message += f" (line {problem_line}: {reason})"
        else:
            message += f" ({reason})"
        return TopologyProblem(file, line, "", message)
    mark = exc.problem_mark or exc.context_mark
    return TopologyProblem(file, mark.line + 1 if mark else 1, "", f"not valid YAML: {reason}")


def read_topology(
    path: str | Path, *, known: Topology | None = None, vhost: str | None = None
) -> LoadedTopology:
    """Check and load a topology file (YAML, or a definitions export in JSON).

    A leading byte order mark is dropped, as RabbitMQ does.

    Args:
        path: the file.
        known: entities declared elsewhere that references may name.
        vhost: the virtual host to load when the file's entities name several.

    Returns:
        The topology, the ``x-burrowmq`` settings and the warnings.

    Raises:
        TopologyError: the file cannot be read, or holds problems (``errors`` lists
            every one, each with file, line and key path).
    """
    file = str(path)
    try:
        text = strip_bom(Path(path).read_bytes()).decode("utf-8")
    except FileNotFoundError:
        problem = TopologyProblem(file, 0, "", "no such file")
        raise TopologyError(str(problem), source=file, errors=[problem]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problem = TopologyProblem(file, 0, "", f"cannot read: {reason}")
        raise TopologyError(str(problem), source=file, errors=[problem]) from None
    return parse_topology(text, file=file, known=known, vhost=vhost)


def load_topology(
    path: str | Path, *, known: Topology | None = None, vhost: str | None = None
) -> Topology:
    """Load a topology file, without its warnings.

    Args:
        path: the file.
        known: entities declared elsewhere that references may name.
        vhost: the virtual host to load when the file's entities name several.

    Returns:
        The topology.

    Raises:
        TopologyError: the file cannot be read, or holds problems.
    """
    return read_topology(path, known=known, vhost=vhost).topology


def merge_with(source: str | Path | Topology | None, declared: Topology) -> Topology:
    """One topology of ``declared`` (what routes need) and ``source`` (a file or model).

    The file may bind to queues and exchanges that only ``declared`` holds.

    Raises:
        TopologyError: bad YAML, or the same entity declared twice with other settings.
    """
    if source is None:
        return declared
    if isinstance(source, Topology):
        return source.merge(declared)
    return load_topology(source, known=declared).merge(declared)
