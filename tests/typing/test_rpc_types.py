"""Typed RPC: mypy infers what ``app.call`` returns (``scripts/check`` runs mypy here).

``app.call(handler, request)`` with the decorated handler is typed as the handler's
return type; ``returns=Model`` as the model; a procedure name alone as ``Any``. The same
calls run here on the memory transport, so the types are the values' too.
"""

from __future__ import annotations

from typing import Annotated, Any, assert_type

import pytest
from pydantic import BaseModel

from burrowmq import App, ConfigurationError, Depends, NoRoute, Router
from burrowmq.sync import Client
from burrowmq.testing import TestClient

pytestmark = pytest.mark.unit


class QuoteRequest(BaseModel):
    """A request for a price."""

    sku: str


class Quote(BaseModel):
    """A price."""

    sku: str
    price: float


def rate() -> float:
    return 2.5


router = Router()


@router.rpc("pricing.quote")
async def quote(req: QuoteRequest, per_unit: Annotated[float, Depends(rate)]) -> Quote:
    return Quote(sku=req.sku, price=per_unit)


@router.rpc("pricing.count")
async def count(req: QuoteRequest) -> int:
    return len(req.sku)


async def not_a_route(req: QuoteRequest) -> Quote:
    return Quote(sku=req.sku, price=0.0)


app = App([router], url="memory://")


class TestTypedCall:
    """The call's static type is the reply's runtime type."""

    async def test_a_handler_call_is_typed_as_the_handler_returns(self) -> None:
        """``call(handler, req)`` is a ``Quote`` (or ``int``), statically and at run time."""
        async with TestClient(app) as client:
            reply = await client.app.call(quote, QuoteRequest(sku="tea"))
            assert_type(reply, Quote)
            assert reply == Quote(sku="tea", price=2.5)
            number = await client.app.call(count, QuoteRequest(sku="tea"))
            assert_type(number, int)
            assert number == 3
            via_client = await client.call(quote, QuoteRequest(sku="tea"))
            assert_type(via_client, Quote)
            assert via_client.price == 2.5

    async def test_returns_types_the_call_and_a_name_alone_is_any(self) -> None:
        """``returns=Model`` gives the model; a procedure name alone gives ``Any``."""
        async with TestClient(app) as client:
            typed = await client.app.call("pricing.quote", QuoteRequest(sku="x"), returns=Quote)
            assert_type(typed, Quote)
            assert isinstance(typed, Quote)
            loose = await client.app.call("pricing.quote", QuoteRequest(sku="x"))
            assert_type(loose, Any)
            assert loose == {"sku": "x", "price": 2.5}
            as_float = await client.app.call(count, QuoteRequest(sku="ab"), returns=float)
            assert_type(as_float, float)

    async def test_a_function_that_is_no_route_of_the_app_is_refused(self) -> None:
        """A callable the app's routers do not serve by RPC is a ConfigurationError."""
        async with TestClient(app) as client:
            with pytest.raises(ConfigurationError, match="not_a_route is not one"):
                await client.app.call(not_a_route, QuoteRequest(sku="x"))


class TestSyncCall:
    """The blocking client's ``call`` is typed like the App's."""

    def test_returns_types_the_blocking_call(self) -> None:
        """``Client.call(..., returns=Quote)`` is a ``Quote`` statically; a name alone ``Any``.

        Nothing serves this client's own memory broker, so at run time the call is NoRoute.
        """
        with Client("memory://") as client:

            def typed() -> None:
                reply = client.call("pricing.quote", QuoteRequest(sku="x"), returns=Quote)
                assert_type(reply, Quote)
                loose = client.call("pricing.quote", QuoteRequest(sku="x"), timeout=1)
                assert_type(loose, Any)

            with pytest.raises(NoRoute):
                typed()
