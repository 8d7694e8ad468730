"""The documentation's runnable code blocks run as pasted, against the real broker.

A block is runnable when the line before its ```` ```python ```` fence is
``<!-- runnable -->`` (in README.md and any page under docs/, subfolders
included: docs/**/*.md); other blocks are fragments and
are left alone. Each runnable block runs in a subprocess, in a fresh vhost (deleted
afterwards, with whatever the block declared) that it finds through ``$BURROWMQ_URL``,
and must exit 0 within the timeout; a ``# Prints: TEXT`` line in the block is a line its
output must hold.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.examples, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- runnable -->"
PRINTS = re.compile(r"^# Prints: (?P<line>.+)$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Block:
    """One runnable code block: where it is, and its code."""

    path: Path
    line: int  # of the opening fence, 1-based
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def runnable_blocks(path: Path) -> list[Block]:
    """Every block of ``path`` marked runnable.

    Raises:
        AssertionError: a marker is not followed by a ```` ```python ```` fence, or a
            marked block is never closed.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, text in enumerate(lines):
        if text.strip() != MARKER:
            continue
        fence = index + 1
        assert fence < len(lines) and lines[fence].strip() == "```python", (
            f"{path.name}:{index + 1}: {MARKER} must be the line right before a ```python fence"
        )
        end = next((i for i in range(fence + 1, len(lines)) if lines[i].strip() == "```"), None)
        assert end is not None, f"{path.name}:{fence + 1}: the runnable block is never closed"
        blocks.append(Block(path, fence + 1, "\n".join(lines[fence + 1 : end]) + "\n"))
    return blocks


BLOCKS = [block for path in _documents() for block in runnable_blocks(path)]


class TestMarkers:
    def test_the_quickstart_is_marked_runnable(self) -> None:
        """The README's Quickstart code is a runnable block, so a newcomer's paste is tested."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
        assert f"{MARKER}\n```python\n" in section
        assert any(b.path.name == "README.md" and "asyncio.run(main())" in b.code for b in BLOCKS)

    def test_the_getting_started_example_is_runnable(self) -> None:
        """The documentation site's first example is a runnable block, found in docs/ subfolders too."""
        assert any(b.path == ROOT / "docs" / "getting-started.md" for b in BLOCKS)
        assert ROOT / "docs" / "concepts" / "routing.md" in _documents()

    def test_a_marker_marks_a_python_block(self, tmp_path: Path) -> None:
        """A marker that is not right before a python fence is reported, not skipped."""
        page = tmp_path / "page.md"
        page.write_text(f"{MARKER}\n\n```python\nprint(1)\n```\n", encoding="utf-8")
        with pytest.raises(AssertionError, match=r"page.md:1: .* right before a ```python"):
            runnable_blocks(page)

    def test_expected_lines_are_read(self, tmp_path: Path) -> None:
        """Blocks are cut at their fences, and ``# Prints:`` lines name the output expected."""
        page = tmp_path / "page.md"
        page.write_text(
            f"text\n{MARKER}\n```python\nprint('hi')\n# Prints: hi\n```\n```python\nx\n```\n",
            encoding="utf-8",
        )
        [block] = runnable_blocks(page)
        assert (block.line, block.code) == (3, "print('hi')\n# Prints: hi\n")
        assert PRINTS.findall(block.code) == ["hi"]


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_block_runs_as_pasted(block: Block, fresh_vhost: str, tmp_path: Path) -> None:
    """The block, saved as a file and run with Python, exits 0 and prints what it says."""
    script = tmp_path / "snippet.py"
    script.write_text(block.code, encoding="utf-8")
    env = dict(os.environ, BURROWMQ_URL=fresh_vhost, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,  # as a user runs it: nothing of this repository on the path
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{block.name} exited {result.returncode}:\n{output}"
    printed = result.stdout.splitlines()
    for line in PRINTS.findall(block.code):
        assert line in printed, f"{block.name} did not print {line!r}:\n{output}"
