"""Tests for the `burrowmq` entry point: its logging options (no broker)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from burrowmq import App
from burrowmq.cli import build_parser, main

pytestmark = pytest.mark.unit

EXAMPLE = str(Path(__file__).resolve().parents[3] / "examples" / "topology.yaml")
LIBRARIES = ("aiormq", "aio_pika")


@pytest.fixture(autouse=True)
def _restore_library_loggers() -> Iterator[None]:
    """Undo what main() does to the aio-pika and aiormq loggers."""
    saved = {
        name: (logger.level, logger.propagate, list(logger.handlers))
        for name in LIBRARIES
        if (logger := logging.getLogger(name))
    }
    yield
    for name, (level, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


class TestLogLevel:
    """--log-level takes the known levels only."""

    def test_unknown_level_is_refused_with_the_choices(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`--log-level verbose` exits 2 naming the valid levels."""
        with pytest.raises(SystemExit) as exited:
            main(["--log-level", "verbose", "topology", "validate", EXAMPLE])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "invalid choice: 'verbose'" in err
        assert "debug" in err and "warning" in err

    def test_unknown_level_after_the_subcommand_is_refused(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The option given after the subcommand is checked too."""
        with pytest.raises(SystemExit):
            main(["topology", "validate", EXAMPLE, "--log-level", "verbose"])
        assert "invalid choice: 'verbose'" in capsys.readouterr().err

    def test_unknown_level_from_the_environment_is_refused(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """BURROWMQ_LOG_LEVEL=verbose is refused like the option."""
        monkeypatch.setenv("BURROWMQ_LOG_LEVEL", "verbose")
        with pytest.raises(SystemExit) as exited:
            main(["topology", "validate", EXAMPLE])
        assert exited.value.code == 2
        assert "BURROWMQ_LOG_LEVEL: invalid choice: 'verbose'" in capsys.readouterr().err

    def test_level_is_case_insensitive(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--log-level DEBUG` is debug."""
        assert main(["--log-level", "DEBUG", "topology", "validate", EXAMPLE]) == 0


class TestLibraryLogs:
    """aio-pika's and aiormq's own lines stay out unless asked for."""

    def test_debug_does_not_let_library_lines_through(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """At `--log-level debug` an aiormq debug or warning line prints nothing."""
        assert main(["--log-level", "debug", "topology", "validate", EXAMPLE]) == 0
        capsys.readouterr()
        logging.getLogger("aiormq.connection").debug("frame sent")
        logging.getLogger("aio_pika.robust_connection").warning("reconnecting")
        captured = capsys.readouterr()
        assert "frame sent" not in captured.err + captured.out
        assert "reconnecting" not in captured.err + captured.out

    def test_log_libraries_lets_them_through(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--log-libraries debug` shows aiormq's debug lines on stderr, named."""
        assert main(["--log-libraries", "debug", "topology", "validate", EXAMPLE]) == 0
        capsys.readouterr()
        logging.getLogger("aiormq.connection").debug("frame sent")
        assert "aiormq.connection DEBUG frame sent" in capsys.readouterr().err


class TestRpcCall:
    """`burrowmq rpc call` waits as long as App.call does by default."""

    def test_default_timeout_is_the_apps(self) -> None:
        """Without --timeout the call uses App(rpc_timeout=...)'s default, 30 s."""
        args = build_parser().parse_args(["rpc", "call", "pricing.quote", "{}"])
        assert args.timeout is None  # App.call(timeout=None): the App's rpc_timeout
        assert App(url="memory://").rpc_timeout == 30.0
        assert build_parser().parse_args(["rpc", "call", "a.b", "--timeout", "2"]).timeout == 2
