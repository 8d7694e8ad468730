"""The blocking client's own behaviour, on the memory transport: options, lifecycle, misuse."""

from __future__ import annotations

import asyncio
import threading

import pytest

from burrowmq import ConfigurationError, NoRoute, StateError, Unroutable
from burrowmq.sync import Client

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "burrowmq-sync-loop"]


class TestOptions:
    """Bad options fail when the client is made, not on first use."""

    @pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), True, "5"])
    def test_bad_timeout_is_refused(self, timeout: object) -> None:
        """A timeout that is not a positive finite number is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="timeout"):
            Client("memory://", timeout=timeout)  # type: ignore[arg-type]

    def test_bad_url_is_refused(self) -> None:
        """A URL of an unknown scheme is a ConfigurationError at construction."""
        with pytest.raises(ConfigurationError):
            Client("http://localhost/")

    def test_bad_timeout_of_one_call_is_refused(self) -> None:
        """A method's own bad ``timeout=`` is a ConfigurationError, before any connection."""
        client = Client("memory://")
        try:
            with pytest.raises(ConfigurationError, match="timeout"):
                client.publish("", b"x", routing_key="q", timeout=0)
            assert _loop_threads() == []
        finally:
            client.close()

    def test_call_takes_a_procedure_name(self) -> None:
        """``call`` with something other than a name is a ConfigurationError."""
        with Client("memory://") as client, pytest.raises(ConfigurationError, match="name"):
            client.call(print, {})  # type: ignore[call-overload]


class TestLifecycle:
    """Lazy start, context manager, idempotent close, use after close."""

    def test_nothing_starts_before_first_use(self) -> None:
        """A new client has no loop thread; closing it unused starts none."""
        client = Client("memory://")
        assert _loop_threads() == []
        client.close()
        client.close()
        assert client.closed
        assert _loop_threads() == []

    def test_with_starts_and_close_joins_the_thread(self) -> None:
        """``with`` starts the loop thread at once; leaving it joins the thread."""
        with Client("memory://") as client:
            assert len(_loop_threads()) == 1
            assert "running" in repr(client)
        assert _loop_threads() == []
        assert "closed" in repr(client)

    def test_close_is_idempotent(self) -> None:
        """A second and third close do nothing and raise nothing."""
        client = Client("memory://")
        client.publish("", b"x", routing_key="nowhere")
        client.close()
        client.close()
        client.close(timeout=1)
        assert _loop_threads() == []

    def test_use_after_close_is_a_state_error(self) -> None:
        """Publishing or calling on a closed client raises StateError."""
        client = Client("memory://")
        client.close()
        with pytest.raises(StateError, match="closed"):
            client.publish("", b"x", routing_key="q")
        with pytest.raises(StateError, match="closed"):
            client.call("svc.m", {})
        assert _loop_threads() == []


class TestErrors:
    """The core's errors reach the caller as they are: burrowmq's, never a library's."""

    def test_mandatory_publish_to_nothing_is_unroutable(self) -> None:
        """A mandatory publish that no queue takes raises Unroutable."""
        with Client("memory://") as client, pytest.raises(Unroutable):
            client.publish("", b"x", routing_key="no-such-queue", mandatory=True)

    def test_delay_and_partition_key_are_the_apps(self) -> None:
        """``delay`` and ``partition_key`` reach App.publish: its refusals come back as they are."""
        with Client("memory://") as client:
            with pytest.raises(ConfigurationError, match="mandatory"):
                client.publish("", b"x", routing_key="q", delay=5, mandatory=True)
            with pytest.raises(ConfigurationError, match="not a partitioned stream"):
                client.publish("orders", b"x", partition_key="customer-1")

    def test_call_to_no_service_is_no_route(self) -> None:
        """A call nothing serves raises NoRoute at once."""
        with Client("memory://") as client, pytest.raises(NoRoute):
            client.call("nobody.there", {"sku": "tea"}, timeout=5)


class TestOwnLoop:
    """The client refuses to block its own loop thread."""

    def test_publish_from_the_loop_thread_is_refused(self) -> None:
        """A blocking method called on the client's loop raises StateError, not a deadlock."""
        with Client("memory://") as client:
            loop = client._loop
            assert loop is not None

            async def inside() -> None:
                client.publish("", b"x", routing_key="q")

            future = asyncio.run_coroutine_threadsafe(inside(), loop)
            with pytest.raises(StateError, match="own event loop"):
                future.result(10)

            async def close_inside() -> None:
                client.close()

            future = asyncio.run_coroutine_threadsafe(close_inside(), loop)
            with pytest.raises(StateError, match="own event loop"):
                future.result(10)
