"""The RPC wire protocol: error envelopes, deadlines and procedure names."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from burrowmq.exceptions import ConfigurationError, RemoteError
from burrowmq.routing.procedure import Procedure, service_queue
from burrowmq.rpc.protocol import (
    HEADER_DEADLINE,
    ErrorEnvelope,
    deadline_passed,
    decode_error,
    encode_error,
    now_ms,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class TestErrorEnvelope:
    """Error replies are JSON envelopes, never pickles."""

    def test_round_trip_keeps_every_field(self) -> None:
        """Type, message, details and traceback survive encoding and decoding."""
        body = encode_error("ValueError", "bad", details={"field": "x"}, traceback="Traceback...")
        error = decode_error(body, procedure="svc.m", correlation_id="c1")
        assert isinstance(error, RemoteError)
        assert (error.type, error.remote_message) == ("ValueError", "bad")
        assert error.details == {"field": "x"}
        assert error.traceback == "Traceback..."
        assert (error.procedure, error.correlation_id) == ("svc.m", "c1")
        assert "svc.m failed remotely: ValueError: bad" in str(error)

    def test_body_is_plain_json(self) -> None:
        """The envelope is a JSON object with exactly five keys."""
        envelope = json.loads(encode_error("KeyError", "'k'", module="builtins"))
        assert envelope == {
            "type": "KeyError",
            "module": "builtins",
            "message": "'k'",
            "details": None,
            "traceback": None,
        }

    def test_unserialisable_details_become_their_repr(self) -> None:
        """Details that are not JSON are sent as their repr instead of failing the reply."""

        class Opaque:
            def __repr__(self) -> str:
                return "<opaque>"

        envelope = ErrorEnvelope.model_validate_json(encode_error("E", "m", details=Opaque()))
        assert envelope.details == "<opaque>"

    def test_long_message_is_cut(self) -> None:
        """A huge exception message is truncated to a bounded size."""
        envelope = ErrorEnvelope.model_validate_json(encode_error("E", "x" * 100_000))
        assert len(envelope.message) == 4000

    def test_module_travels_beside_the_plain_type(self) -> None:
        """The defining module reaches RemoteError.module; the type stays the plain name."""
        body = encode_error("OutOfStock", "none left", module="shop.stock")
        error = decode_error(body, procedure="svc.m", correlation_id=None)
        assert (error.type, error.module) == ("OutOfStock", "shop.stock")
        assert "svc.m failed remotely: OutOfStock: none left" in str(error)

    def test_reply_of_an_older_server_is_read(self) -> None:
        """An envelope without module, its type a qualname, gives the plain name and no module."""
        body = json.dumps(
            {"type": "reserve.<locals>.OutOfStock", "message": "m", "details": None,
             "traceback": None}
        ).encode()  # fmt: skip
        error = decode_error(body, procedure="svc.m", correlation_id=None)
        assert (error.type, error.module, error.remote_message) == ("OutOfStock", None, "m")

    def test_older_clients_read_the_new_envelope(self) -> None:
        """The envelope before module existed still validates a new reply (the key is ignored)."""

        class OldEnvelope(BaseModel):
            type: str
            message: str
            details: Any = None
            traceback: str | None = None

        old = OldEnvelope.model_validate_json(encode_error("OutOfStock", "m", module="shop"))
        assert (old.type, old.message) == ("OutOfStock", "m")

    def test_garbage_body_still_gives_a_remote_error(self) -> None:
        """An error reply that is not an envelope becomes an InvalidErrorReply RemoteError."""
        error = decode_error(b"\x80not json", procedure="svc.m", correlation_id=None)
        assert error.type == "InvalidErrorReply"


class TestDeadline:
    """Servers skip requests whose x-rpc-deadline has passed."""

    def test_past_deadline_has_passed(self) -> None:
        """A deadline a second ago has passed."""
        assert deadline_passed({HEADER_DEADLINE: now_ms() - 1000})

    def test_future_deadline_has_not_passed(self) -> None:
        """A deadline a minute ahead has not passed."""
        assert not deadline_passed({HEADER_DEADLINE: now_ms() + 60_000})

    @pytest.mark.parametrize("value", [None, "123", True, 1.5])
    def test_missing_or_malformed_header_never_expires(self, value: object) -> None:
        """Without a usable integer deadline the request is always run."""
        headers = {} if value is None else {HEADER_DEADLINE: value}
        assert not deadline_passed(headers, now=10**15)


class TestProcedure:
    """Procedure names are '<service>.<method>' and decide the queue and binding."""

    def test_service_is_everything_before_the_last_word(self) -> None:
        """A dotted service keeps its dots; the method is the last word."""
        proc = Procedure.parse("billing.invoices.create")
        assert (proc.service, proc.method) == ("billing.invoices", "create")
        assert proc.binding_key == "billing.invoices.*"
        assert proc.queue == "rpc.billing.invoices" == service_queue("billing.invoices")

    @pytest.mark.parametrize("name", ["pricing", "", ".quote", "pricing.", "a.*", "a.#", "a b.c"])
    def test_malformed_names_are_refused(self, name: str) -> None:
        """Names without a method, with empty words or wildcard characters are refused."""
        with pytest.raises(ConfigurationError, match=r"service\.method"):
            Procedure.parse(name)

    def test_name_longer_than_a_routing_key_is_refused(self) -> None:
        """A name over 255 bytes cannot be a routing key."""
        with pytest.raises(ConfigurationError, match="255"):
            Procedure.parse("s." + "m" * 300)
