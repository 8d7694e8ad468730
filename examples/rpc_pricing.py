"""RPC: a pricing service answering ``pricing.quote`` and ``pricing.convert``.

Run it: ``burrowmq run examples.rpc_pricing:app``; call it with
``python -m examples.rpc_client`` or
``burrowmq rpc call pricing.quote '{"sku": "tea", "quantity": 3}'``.

Requests for every method of the service land on one durable queue, ``rpc.pricing``,
bound to the ``burrowmq.rpc`` exchange with ``pricing.*``. Each handler's parameter
annotation validates the request, its return annotation shapes the reply, and an
exception comes back to the caller as ``burrowmq.RemoteError``.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from burrowmq import App, Router

router = Router()

PRICES = {"tea": Decimal("4.50"), "coffee": Decimal("6.00"), "cocoa": Decimal("5.25")}
RATES = {("EUR", "USD"): Decimal("1.08"), ("USD", "EUR"): Decimal("0.93")}


class QuoteRequest(BaseModel):
    """What the caller wants priced."""

    sku: str
    quantity: int = Field(gt=0, le=1000)
    coupon: str | None = None


class Quote(BaseModel):
    """A priced order line."""

    sku: str
    quantity: int
    unit_price: Decimal
    discount: Decimal = Decimal("0")
    total: Decimal
    currency: str = "EUR"


class Conversion(BaseModel):
    """An amount to convert between currencies."""

    amount: Decimal
    source: str = Field(min_length=3, max_length=3)
    target: str = Field(min_length=3, max_length=3)


class UnknownSkuError(LookupError):
    """The catalogue has no such product."""


@router.rpc("pricing.quote")
async def quote(req: QuoteRequest) -> Quote:
    """Price ``quantity`` units of ``sku``; the coupon ``TENOFF`` takes 10% off."""
    unit = PRICES.get(req.sku)
    if unit is None:
        raise UnknownSkuError(f"no product {req.sku!r}; known: {', '.join(sorted(PRICES))}")
    gross = unit * req.quantity
    discount = (gross * Decimal("0.10")).quantize(Decimal("0.01")) if req.coupon == "TENOFF" else 0
    return Quote(
        sku=req.sku,
        quantity=req.quantity,
        unit_price=unit,
        discount=Decimal(discount),
        total=gross - discount,
    )


@router.rpc("pricing.convert")
async def convert(req: Conversion) -> Decimal:
    """Convert an amount between EUR and USD."""
    if req.source == req.target:
        return req.amount
    rate = RATES.get((req.source, req.target))
    if rate is None:
        raise ValueError(f"no rate from {req.source} to {req.target}")
    return (req.amount * rate).quantize(Decimal("0.01"))


app = App([router], name="pricing")
