"""``burrowmq run --loop``: which event loop the service runs on."""

from __future__ import annotations

import sys

import pytest

from burrowmq import ConfigurationError
from burrowmq.cli.run import loop_factory


class TestLoopChoice:
    def test_asyncio_is_asyncio_s_own(self) -> None:
        """``--loop asyncio`` is asyncio's own loop even with uvloop installed."""
        assert loop_factory("asyncio") is None

    def test_auto_takes_uvloop_when_installed(self) -> None:
        """``auto`` (the default) runs on uvloop where it is installed (the dev tools have it)."""
        uvloop = pytest.importorskip("uvloop")
        assert loop_factory("auto") is uvloop.new_event_loop

    def test_without_uvloop(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without uvloop, ``auto`` falls back to asyncio and ``uvloop`` says how to get it."""
        monkeypatch.setitem(sys.modules, "uvloop", None)  # an import of it now fails
        assert loop_factory("auto") is None
        with pytest.raises(ConfigurationError, match=r"burrowmq\[speed\]"):
            loop_factory("uvloop")
