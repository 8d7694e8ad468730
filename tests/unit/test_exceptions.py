"""The error classes of burrowmq.exceptions and the context they carry."""

from __future__ import annotations

import pytest

from burrowmq.exceptions import (
    BrokerUnreachable,
    BurrowError,
    ConfigurationError,
    ConnectionLost,
    DecodeError,
    HandlerTimeout,
    LifespanError,
    NoRoute,
    PublishError,
    PublishNacked,
    RemoteError,
    RpcError,
    RpcTimeout,
    StateError,
    TopologyError,
    TransportError,
    Unroutable,
)

pytestmark = pytest.mark.unit


class TestHierarchy:
    """Where each error sits in the tree."""

    @pytest.mark.parametrize(
        ("cls", "parent"),
        [
            (ConfigurationError, BurrowError),
            (StateError, ConfigurationError),
            (TransportError, BurrowError),
            (BrokerUnreachable, TransportError),
            (ConnectionLost, TransportError),
            (PublishError, BurrowError),
            (PublishNacked, PublishError),
            (Unroutable, PublishError),
            (NoRoute, Unroutable),
            (TopologyError, BurrowError),
            (DecodeError, BurrowError),
            (HandlerTimeout, BurrowError),
            (LifespanError, BurrowError),
            (RpcError, BurrowError),
            (RpcTimeout, RpcError),
            (RemoteError, RpcError),
        ],
        ids=lambda cls: cls.__name__,
    )
    def test_parent(self, cls: type[BurrowError], parent: type[BurrowError]) -> None:
        """Each error derives from the parent drawn in the module's tree."""
        assert issubclass(cls, parent)

    def test_no_route_is_unroutable_is_publish_error(self) -> None:
        """A ``NoRoute`` is caught by ``except Unroutable`` and by ``except PublishError``."""
        error = NoRoute("no server for pricing.quote", exchange="burrowmq.rpc")
        assert isinstance(error, Unroutable)
        assert isinstance(error, PublishError)
        with pytest.raises(Unroutable):
            raise error

    @pytest.mark.parametrize(
        ("cls", "unrelated"),
        [
            (PublishNacked, Unroutable),
            (RpcTimeout, RemoteError),
            (RpcTimeout, TransportError),
            (TopologyError, ConfigurationError),
            (DecodeError, ConfigurationError),
        ],
        ids=lambda cls: cls.__name__,
    )
    def test_siblings_are_distinct(
        self, cls: type[BurrowError], unrelated: type[BurrowError]
    ) -> None:
        """Sibling errors do not derive from one another."""
        assert not issubclass(cls, unrelated)


class TestPublishError:
    """``PublishError`` and its subclasses carry the exchange and routing key."""

    @pytest.mark.parametrize("cls", [PublishError, PublishNacked, Unroutable, NoRoute])
    def test_carries_exchange_and_routing_key(self, cls: type[PublishError]) -> None:
        """The exchange and routing key given are kept as attributes, with the message."""
        error = cls("not routed", exchange="orders", routing_key="order.eu.placed")
        assert error.exchange == "orders"
        assert error.routing_key == "order.eu.placed"
        assert str(error) == "not routed"

    @pytest.mark.parametrize("cls", [PublishError, PublishNacked, Unroutable, NoRoute])
    def test_defaults_to_the_default_exchange(self, cls: type[PublishError]) -> None:
        """Without context, exchange and routing key are empty strings."""
        error = cls("nacked")
        assert (error.exchange, error.routing_key) == ("", "")

    def test_exchange_is_keyword_only(self) -> None:
        """The context is keyword-only, so it cannot be confused with the message."""
        with pytest.raises(TypeError):
            PublishError("message", "orders")  # type: ignore[misc]


class TestTopologyError:
    """``TopologyError`` names the entity, the differing argument and the source."""

    def test_carries_entity_argument_and_source(self) -> None:
        """Entity, argument and source are kept as attributes."""
        error = TopologyError(
            "queue 'billing.charge' differs",
            entity="queue 'billing.charge'",
            argument="x-max-length",
            source="topology.yaml:12",
        )
        assert error.entity == "queue 'billing.charge'"
        assert error.argument == "x-max-length"
        assert error.source == "topology.yaml:12"
        assert str(error) == "queue 'billing.charge' differs"

    def test_context_defaults_to_none(self) -> None:
        """Without context, entity, argument and source are ``None``."""
        error = TopologyError("bad topology")
        assert (error.entity, error.argument, error.source) == (None, None, None)


class TestDecodeError:
    """``DecodeError`` carries the reason and pydantic's errors."""

    def test_carries_reason_and_errors(self) -> None:
        """The reason is the message; structured errors are kept."""
        errors = [{"loc": ["total"], "msg": "Input should be a valid number", "type": "x"}]
        error = DecodeError("total: Input should be a valid number", errors=errors)
        assert error.reason == "total: Input should be a valid number"
        assert str(error) == error.reason
        assert error.errors == errors

    def test_errors_default_to_an_empty_list(self) -> None:
        """Without structured errors, ``errors`` is an empty list."""
        assert DecodeError("body is not valid JSON").errors == []


class TestRpcErrors:
    """The RPC errors carry the procedure, correlation id and remote details."""

    def test_rpc_error_carries_procedure_and_correlation_id(self) -> None:
        """``RpcError`` keeps the procedure and correlation id."""
        error = RpcError("failed", procedure="pricing.quote", correlation_id="c-1")
        assert (error.procedure, error.correlation_id) == ("pricing.quote", "c-1")

    def test_rpc_error_defaults(self) -> None:
        """Without context, the procedure is empty and the correlation id ``None``."""
        error = RpcError("failed")
        assert (error.procedure, error.correlation_id) == ("", None)

    def test_rpc_timeout_carries_timeout(self) -> None:
        """``RpcTimeout`` keeps the timeout as well as the call's context."""
        error = RpcTimeout("no reply", procedure="pricing.quote", correlation_id="c-2", timeout=5.0)
        assert error.timeout == 5.0
        assert (error.procedure, error.correlation_id) == ("pricing.quote", "c-2")

    def test_remote_error_carries_remote_fields(self) -> None:
        """``RemoteError`` keeps the remote type, message, details and traceback."""
        error = RemoteError(
            "pricing.quote raised ValueError: no price",
            type="ValueError",
            remote_message="no price",
            procedure="pricing.quote",
            correlation_id="c-3",
            details={"sku": "A1"},
            traceback="Traceback ...",
        )
        assert error.type == "ValueError"
        assert error.remote_message == "no price"
        assert error.procedure == "pricing.quote"
        assert error.correlation_id == "c-3"
        assert error.details == {"sku": "A1"}
        assert error.traceback == "Traceback ..."
        assert str(error) == "pricing.quote raised ValueError: no price"

    def test_remote_error_optional_fields_default_to_none(self) -> None:
        """Details and traceback are ``None`` unless the server sent them."""
        error = RemoteError("boom", type="KeyError", remote_message="'x'")
        assert (error.details, error.traceback) == (None, None)

    def test_remote_error_requires_type_and_message(self) -> None:
        """The remote type and message are required."""
        with pytest.raises(TypeError):
            RemoteError("boom")  # type: ignore[call-arg]


class TestBrokerUnreachable:
    """``BrokerUnreachable`` carries the masked targets tried."""

    def test_carries_targets(self) -> None:
        """The targets tried are kept as a tuple."""
        error = BrokerUnreachable("no broker", targets=("a:5672", "b:5672"))
        assert error.targets == ("a:5672", "b:5672")

    def test_targets_default_to_empty(self) -> None:
        """Without targets, ``targets`` is an empty tuple."""
        assert BrokerUnreachable("no broker").targets == ()
