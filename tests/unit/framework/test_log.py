"""Tests for the library's logger: quiet until the application configures logging."""

from __future__ import annotations

import logging
import uuid

import pytest
import structlog
import structlog.testing

from burrowmq import App, Router
from burrowmq.framework.log import get_logger

pytestmark = pytest.mark.unit


async def _run_an_app() -> None:
    router = Router()

    @router.consume("jobs", queue_options={})
    async def job(body: dict[str, int]) -> None: ...

    async with App([router], url=f"memory://{uuid.uuid4().hex}"):
        pass


class TestUnconfigured:
    """Without structlog configured, events go to stdlib logging's ``burrowmq`` logger."""

    async def test_debug_and_info_lines_do_not_print(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An app run in a script that configured nothing prints no consumer_started or app_started."""
        structlog.reset_defaults()
        await _run_an_app()
        captured = capsys.readouterr()
        assert "consumer_started" not in captured.out + captured.err
        assert "app_started" not in captured.out + captured.err

    async def test_stdlib_configuration_shows_them(self, caplog: pytest.LogCaptureFixture) -> None:
        """With stdlib logging at debug, the events arrive as ``event key=value`` records."""
        structlog.reset_defaults()
        with caplog.at_level(logging.DEBUG, logger="burrowmq"):
            await _run_an_app()
        messages = [r.getMessage() for r in caplog.records if r.name == "burrowmq"]
        assert any(m.startswith("consumer_started queue='jobs'") for m in messages), messages
        started = [r for r in caplog.records if r.getMessage().startswith("app_started")]
        assert started and started[0].levelno == logging.INFO

    def test_warnings_reach_stdlib_with_the_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A warning is a stdlib warning record; an exception keeps its exc_info."""
        structlog.reset_defaults()
        log = get_logger(component="x")
        with caplog.at_level(logging.WARNING, logger="burrowmq"):
            log.warning("something_odd", n=1)
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                log.exception("it_failed")
        warning, error = caplog.records
        assert (warning.levelno, warning.getMessage()) == (
            logging.WARNING,
            "something_odd component='x' n=1",
        )
        assert error.levelno == logging.ERROR and error.exc_info is not None


class TestConfigured:
    """Once the application configured structlog, events go through structlog."""

    def test_structlog_configuration_is_followed(self) -> None:
        """A logger made before structlog was configured follows the configuration."""
        structlog.reset_defaults()
        log = get_logger()
        with structlog.testing.capture_logs() as logs:
            log.debug("consumer_started", queue="jobs")
        assert logs == [{"event": "consumer_started", "queue": "jobs", "log_level": "debug"}]
