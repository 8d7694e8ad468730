"""The one table that turns aio-pika's, aiormq's and pamqp's errors into burrowmq's."""

from __future__ import annotations

import asyncio

import aiormq.exceptions as amqp_errors
import pytest
from pamqp import commands as spec

from burrowmq.amqp.errors import (
    CHANNEL,
    CONNECT,
    CONSUME,
    DECLARE,
    PUBLISH,
    TABLE,
    Context,
    Operation,
    fail,
    translate,
)
from burrowmq.exceptions import (
    BrokerUnreachable,
    BurrowError,
    ConnectionLost,
    PublishError,
    PublishNacked,
    TopologyError,
    TransportError,
    Unroutable,
)

pytestmark = pytest.mark.unit

_INEQUIVALENT = (
    "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'jobs' in vhost '/': "
    "received the value '10' of type 'signedint' but current is the value '20' of type "
    "'signedint'"
)


def _closed(kind: type[Exception], code: int, text: str) -> Exception:
    return kind(spec.Channel.Close(reply_code=code, reply_text=text))


def _publish(**extra: object) -> Context:
    return Context(PUBLISH, "exchange 'orders'", exchange="orders", routing_key="eu", **extra)  # type: ignore[arg-type]


class TestTable:
    """Each row of the table, by operation."""

    def test_every_operation_has_rows(self) -> None:
        """Every operation is covered by at least one row of its own or the catch-all."""
        covered = {op for _, operations, _ in TABLE for op in operations}
        assert covered == set(Operation)

    def test_precondition_names_entity_argument_and_both_values(self) -> None:
        """A 406 on a declaration names the entity, the argument and both values."""
        exc = _closed(amqp_errors.ChannelPreconditionFailed, 406, _INEQUIVALENT)
        error = translate(exc, Context(DECLARE, "queue 'jobs'", requested={"queue": "jobs"}))
        assert isinstance(error, TopologyError)
        assert (error.entity, error.argument) == ("queue 'jobs'", "x-max-length")
        assert "with x-max-length=20, but" in str(error)
        assert "asks for x-max-length=10;" in str(error)
        assert "signedint" not in str(error)

    def test_vhost_refused_at_open_is_named(self) -> None:
        """aiormq's "Expected one of ['Connection.OpenOk'], got <Connection.Close ...>" reads as the vhost."""
        exc = amqp_errors.InvalidFrameError(
            "Expected one of ['Connection.OpenOk'], got <Connection.Close object at 0x7f01>"
        )
        target = "rabbit:5672 (vhost 'shop') as user 'svc'"
        error = translate(exc, Context(CONNECT, target, vhost="shop"))
        assert isinstance(error, BrokerUnreachable)
        assert error.answered
        assert str(error) == (
            f"{target}: vhost 'shop' does not exist or access to it is refused for this user"
        )

    def test_other_invalid_frame_drops_the_address(self) -> None:
        """Another unexpected frame at connect is reported without the object's address."""
        exc = amqp_errors.InvalidFrameError("got <Basic.Deliver object at 0x7f01>")
        error = translate(exc, Context(CONNECT, "rabbit:5672"))
        assert "0x7f01" not in str(error)
        assert not error.answered  # type: ignore[attr-defined]

    def test_precondition_strips_the_type_tags(self) -> None:
        """A conflict reads without pamqp's type tags, and a missing argument as "without"."""
        text = (
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'jobs'"
            " in vhost '/': received the value 'jobs.dlx' of type 'longstr' but current is none"
        )
        exc = _closed(amqp_errors.ChannelPreconditionFailed, 406, text)
        error = str(translate(exc, Context(DECLARE, "queue 'jobs'")))
        assert "(longstr)" not in error and "longstr" not in error
        assert "exists on the broker without x-dead-letter-exchange" in error
        assert "asks for x-dead-letter-exchange=jobs.dlx;" in error

    def test_precondition_keeps_the_types_where_only_they_differ(self) -> None:
        """'10' as a string against 10 as an integer names both types, in words."""
        text = (
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'jobs' in vhost"
            " '/': received the value '10' of type 'longstr' but current is the value '10'"
            " of type 'long'"
        )
        exc = _closed(amqp_errors.ChannelPreconditionFailed, 406, text)
        error = str(translate(exc, Context(DECLARE, "queue 'jobs'")))
        assert "with x-max-length=10 (an integer)" in error
        assert "asks for x-max-length=10 (a string)" in error

    def test_precondition_cut_short_takes_the_requested_value(self) -> None:
        """RabbitMQ cuts reply texts at 255 bytes: the requested value comes from the declaration."""
        exc = _closed(
            amqp_errors.ChannelPreconditionFailed,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'a-very-long",
        )
        requested = {"arguments": {"x-queue-type": "quorum"}}
        error = translate(exc, Context(DECLARE, "queue 'q'", requested=requested))
        assert isinstance(error, TopologyError)
        assert "asks for x-queue-type='quorum'" in str(error)

    @pytest.mark.parametrize(
        ("kind", "words"),
        [
            (amqp_errors.ChannelNotFoundEntity, "queue 'q': NOT_FOUND - no queue 'q'"),
            (amqp_errors.ChannelAccessRefused, "queue 'q' was refused: ACCESS_REFUSED"),
            (amqp_errors.ChannelLockedResource, "queue 'q' was refused: RESOURCE_LOCKED"),
        ],
    )
    def test_declaration_refusals(self, kind: type[Exception], words: str) -> None:
        """A declaration the broker refuses is a TopologyError naming the entity."""
        reply = {
            amqp_errors.ChannelNotFoundEntity: "NOT_FOUND - no queue 'q'",
            amqp_errors.ChannelAccessRefused: "ACCESS_REFUSED - no configure permission",
            amqp_errors.ChannelLockedResource: "RESOURCE_LOCKED - exclusive queue",
        }[kind]
        error = translate(_closed(kind, 404, reply), Context(DECLARE, "queue 'q'"))
        assert isinstance(error, TopologyError)
        assert words in str(error)
        assert error.entity == "queue 'q'"

    def test_consume_of_a_missing_queue(self) -> None:
        """Consuming a queue that does not exist says so."""
        exc = _closed(amqp_errors.ChannelNotFoundEntity, 404, "NOT_FOUND - no queue 'q'")
        error = translate(exc, Context(CONSUME, "queue 'q'"))
        assert isinstance(error, TopologyError)
        assert str(error) == "cannot consume from queue 'q': it does not exist"

    def test_publish_rows(self) -> None:
        """Returned, nacked, missing exchange, other channel error, timeout: each its own error."""
        # aiormq builds these from a returned frame; the table looks at the type alone.
        returned = translate(amqp_errors.PublishError.__new__(amqp_errors.PublishError), _publish())
        assert isinstance(returned, Unroutable)
        assert (returned.exchange, returned.routing_key) == ("orders", "eu")
        nacked = translate(amqp_errors.DeliveryError.__new__(amqp_errors.DeliveryError), _publish())
        assert isinstance(nacked, PublishNacked)
        missing = translate(
            _closed(amqp_errors.ChannelNotFoundEntity, 404, "NOT_FOUND - no exchange 'orders'"),
            _publish(),
        )
        assert type(missing) is PublishError
        assert (
            str(missing) == "cannot publish to exchange 'orders': NOT_FOUND - no exchange 'orders'"
        )
        timed_out = translate(TimeoutError(), _publish(timeout=2.0))
        assert type(timed_out) is PublishError and "within 2.0s" in str(timed_out)

    def test_unencodable_header_is_named(self) -> None:
        """pamqp's TypeError for a header becomes PublishError naming the header."""
        error = translate(TypeError("Unknown type"), _publish(headers={"raw": b"x"}))
        assert type(error) is PublishError
        assert "header 'raw' holds a bytes" in str(error)

    @pytest.mark.parametrize("operation", list(Operation))
    def test_lost_connection_under_any_operation(self, operation: Operation) -> None:
        """A connection that went away is ConnectionLost whatever was being done (BrokerUnreachable while connecting)."""
        exc = amqp_errors.AMQPConnectionError("connection reset")
        error = translate(exc, Context(operation, "queue 'q'"))
        expected = BrokerUnreachable if operation is CONNECT else ConnectionLost
        assert isinstance(error, expected)

    def test_runtime_error_only_when_opening_a_channel(self) -> None:
        """aiormq's plain RuntimeError is a lost connection only where it means one."""
        assert isinstance(translate(RuntimeError("closed"), Context(CHANNEL, "x")), ConnectionLost)
        error = translate(RuntimeError("a bug"), Context(DECLARE, "queue 'q'"))
        assert type(error) is TransportError
        assert "RuntimeError" in str(error)

    @pytest.mark.parametrize(
        ("exc", "words"),
        [
            (amqp_errors.ProbableAuthenticationError("x"), "access refused (check user/password)"),
            (TimeoutError(), "timed out"),
            (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
            (ValueError("bad port"), "not a valid AMQP URL"),
        ],
        ids=["auth", "timeout", "refused", "url"],
    )
    def test_connect_reasons(self, exc: Exception, words: str) -> None:
        """Each connection failure becomes one reason naming the target, never the password."""
        target = "rabbit:5672 (vhost '/') as user 'svc'"
        error = translate(exc, Context(CONNECT, target))
        assert isinstance(error, BrokerUnreachable)
        assert str(error) == f"{target}: {words}"
        assert error.targets == (target,)

    def test_a_looping_cause_chain_ends(self) -> None:
        """An error whose causes lead back to itself (aiormq re-raising a stored reset while
        it handles it) still becomes one reason, the outermost one's."""
        outer = amqp_errors.AMQPConnectionError("Server connection reset")
        inner = ConnectionResetError(104, "Connection reset by peer")
        outer.__cause__ = inner
        inner.__context__ = outer
        error = translate(outer, Context(CONNECT, "rabbit:5672"))
        assert isinstance(error, BrokerUnreachable)
        assert str(error).startswith("rabbit:5672: ")

    def test_masks_passwords_in_library_text(self) -> None:
        """A URL with a password in a library's message is masked."""
        exc = OSError("cannot reach amqp://svc:hunter2@rabbit:5672/")
        error = translate(exc, Context(CONNECT, "rabbit:5672"))
        assert "hunter2" not in str(error)


def _raise_and_fail(exc: BaseException, context: Context) -> None:
    try:
        raise exc
    except Exception as caught:
        fail(caught, context)


class TestPassThrough:
    """What is not the libraries' passes through."""

    def test_burrowmq_errors_and_cancellation_are_kept(self) -> None:
        """Our own errors and a cancellation come back as they are."""
        ours = ConnectionLost("already ours")
        assert translate(ours, _publish()) is ours
        cancelled = asyncio.CancelledError()
        assert translate(cancelled, _publish()) is cancelled

    def test_fail_raises_from_the_library_error(self) -> None:
        """fail() raises the translation with the library error as its cause."""
        exc = amqp_errors.DeliveryError.__new__(amqp_errors.DeliveryError)
        with pytest.raises(PublishNacked) as info:
            _raise_and_fail(exc, _publish())
        assert info.value.__cause__ is exc

    def test_fail_reraises_our_own(self) -> None:
        """fail() re-raises burrowmq's own errors unchanged, without a cause of themselves."""
        ours = TopologyError("ours")
        with pytest.raises(TopologyError) as info:
            _raise_and_fail(ours, Context(DECLARE, "queue 'q'"))
        assert info.value is ours
        assert info.value.__cause__ is None
        assert isinstance(info.value, BurrowError)
