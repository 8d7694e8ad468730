"""Pages generated while mkdocs builds (run by the mkdocs-gen-files plugin).

Each page is derived from the code it documents, so it cannot drift from it:

- ``reference/yaml.md``: the topology YAML format, from the schema the validator checks
  (``burrowmq.topology.fields``, ``burrowmq.topology.arguments``, the ``x-burrowmq``
  settings of ``burrowmq.topology.validation``);
- ``reference/cli.md``: the ``burrowmq`` command, from its argparse parsers;
- ``concepts/shop-graph.md``: the shop example's topology, as
  ``burrowmq topology graph examples.shop:app --format mermaid`` draws it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import mkdocs_gen_files

from burrowmq.cli import build_parser
from burrowmq.framework.vocabulary import QUEUE_TYPES
from burrowmq.topology.arguments import (
    EXCHANGE_ARGUMENTS,
    POLICY_KEYS,
    QUEUE_ARGUMENTS,
    ArgumentRule,
)
from burrowmq.topology.fields import FIELDS, REQUIRED, kind_error
from burrowmq.topology.validation import DEFINITIONS_KEYS, EXTENSION_KEY, Settings

ROOT = Path(__file__).resolve().parents[1]
GENERATED = "<!-- Generated at build time by scripts/gen_docs.py; do not edit. -->\n\n"

# ----------------------------------------------------------------------------- YAML


def _rule(message: str | None) -> str:
    """A validator message without the value it was given (``must be an integer``)."""
    if message is None:
        return "any value"
    return re.sub(r"[;,] got .*$", "", message)


def _kind(kind: str) -> str:
    text = _rule(kind_error(kind, None))  # type: ignore[arg-type]
    if kind == "name":
        text += "; " + _rule(kind_error("name", ""))
    return text


def _argument(rule: ArgumentRule) -> str:
    """What an argument takes, asked of its own check: a wrong type, then the bounds."""
    parts = [_rule(rule.check(None))]
    if parts[0].startswith("must be an integer"):
        for probe in (-(10**12), 10**12):
            bound = rule.check(probe)
            if bound is not None:
                parts.append(_rule(bound))
    return ", ".join(parts)


def _arguments_table(rules: Mapping[str, ArgumentRule]) -> Iterator[str]:
    yield "| Argument | Value | Note |"
    yield "| --- | --- | --- |"
    for name, rule in sorted(rules.items()):
        note = rule.warning or ""
        if rule.removed_in is not None:
            note = f"**refused from RabbitMQ {rule.removed_in}**: {note}"
        yield f"| `{name}` | {_argument(rule)} | {note} |"
    yield ""


def _settings_docs() -> dict[str, str]:
    """The ``Args:`` of the ``Settings`` docstring, one line per field, in Markdown."""
    docs: dict[str, str] = {}
    current = None
    for line in (Settings.__doc__ or "").splitlines():
        match = re.match(r"\s{8}(\w+): (.*)", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current and line.startswith(" " * 12):
            docs[current] += " " + line.strip()
        elif not line.strip():
            current = None
    # Python's None is YAML's null (or the key left out).
    return {
        name: text.replace("``", "`").replace("`None`", "`null`") for name, text in docs.items()
    }


def yaml_reference() -> str:
    out = [
        GENERATED,
        "# Topology YAML reference",
        "",
        "The format of a topology file, as `burrowmq topology validate` and",
        '`App(topology="...")` check it. It uses the field names of RabbitMQ\'s definitions',
        "export, so a `rabbitmqctl export_definitions` file loads as it is. Every problem",
        "is reported as `FILE:LINE: key.path: message`, with the messages quoted below.",
        "",
        "## Top-level keys",
        "",
        "| Key | Holds |",
        "| --- | --- |",
    ]
    for section in FIELDS:
        out.append(f"| `{section}` | a list of {section} (below) |")
    out.append(f"| `{EXTENSION_KEY}` | burrowmq's own settings (below) |")
    ignored = ", ".join(f"`{k}`" for k in sorted(DEFINITIONS_KEYS))
    out += [
        "",
        f"Also accepted and ignored, as in a definitions export: {ignored}.",
        "Any other top-level key is an error.",
        "",
        f"## `{EXTENSION_KEY}`",
        "",
        "| Key | Meaning |",
        "| --- | --- |",
    ]
    docs = _settings_docs()
    for name in Settings.model_fields:
        out.append(f"| `{name}` | {docs.get(name, '')} |")
    out += [
        "",
        f"`default_queue_type` is one of {', '.join(f'`{t}`' for t in QUEUE_TYPES)}.",
        "Without it, a YAML queue that names no `x-queue-type` is **classic**, while queues",
        "declared by decorators are quorum queues.",
        "",
    ]
    for section, fields in FIELDS.items():
        required = REQUIRED[section]
        out += [f"## `{section}`", "", "| Field | Value | Required |", "| --- | --- | --- |"]
        for name, kind in fields.items():
            mark = "yes" if name in required else ""
            out.append(f"| `{name}` | {_kind(kind)} | {mark} |")
        out.append("")
    out += [
        "`queues[].partitions` is burrowmq's own (a definitions export never has it): on a",
        "stream (`x-queue-type: stream`), at least 1, it makes the entry a **super stream**",
        "as RabbitMQ lays one out: a direct exchange of the entry's name",
        "(`x-super-stream: true`), the streams `NAME-0` .. `NAME-(N-1)` with the entry's",
        'arguments, bound with the routing keys `"0"` .. `"N-1"` and the binding argument',
        "`x-stream-partition-order`. `app.publish(NAME, body, partition_key=KEY)` routes to",
        "the partition KEY hashes to, as RabbitMQ's stream clients do. `burrowmq topology",
        "export` writes the expanded entities.",
        "",
        "## Queue arguments",
        "",
        "Checked in `queues[].arguments`. An unknown argument is stored with a warning",
        "(it has no effect); a name close to a known one (`x-max-lenght`) is an error",
        "that says which one was meant.",
        "",
        *_arguments_table(QUEUE_ARGUMENTS),
        "## Exchange arguments",
        "",
        "Checked in `exchanges[].arguments`.",
        "",
        *_arguments_table(EXCHANGE_ARGUMENTS),
        "## Policy definition keys",
        "",
        "Checked in `policies[].definition`.",
        "",
        *_arguments_table(POLICY_KEYS),
    ]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ CLI


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), helps.get(name, ""), sub
                yield from _commands(sub, (*path, name))


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width
    parser = build_parser()
    out = [
        GENERATED,
        "# CLI reference",
        "",
        "Every command of `burrowmq`, with the help it prints. Logging options",
        "(`--log-level`, `--log-json`, `--log-libraries`) are accepted before or after",
        "the command. Exit status: 0 on success, 1 on a failure, 2 on a usage or",
        "configuration error.",
        "",
        "## burrowmq",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    for path, summary, sub in _commands(parser, ("burrowmq",)):
        out += [f"{'#' * min(len(path) + 1, 4)} {' '.join(path)}", ""]
        if summary:
            out += [summary[0].upper() + summary[1:], ""]
        out += ["```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- graph


def shop_graph() -> str:
    command = ["topology", "graph", "examples.shop:app", "--format", "mermaid"]
    result = subprocess.run(
        [sys.executable, "-m", "burrowmq.cli", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"burrowmq {' '.join(command)} failed:\n{result.stderr}")
    return "\n".join(
        [
            GENERATED,
            "# The shop's topology",
            "",
            "The example shop (`examples/shop.py`: the direct, topic, fanout and headers",
            "services together), as",
            f"`burrowmq {' '.join(command)}` draws it at build time: exchanges amber,",
            "queues blue, handlers green, dead-letter paths dotted.",
            "",
            "```mermaid",
            result.stdout.rstrip(),
            "```",
            "",
        ]
    )


for page, build in {
    "reference/yaml.md": yaml_reference,
    "reference/cli.md": cli_reference,
    "concepts/shop-graph.md": shop_graph,
}.items():
    with mkdocs_gen_files.open(page, "w") as file:
        file.write(build())
