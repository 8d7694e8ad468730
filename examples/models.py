"""Message models shared by the examples."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ChargeCommand(BaseModel):
    """Charge a customer for an order."""

    order_id: str
    amount: float = Field(gt=0)
    currency: str = "EUR"


class OrderPlaced(BaseModel):
    """An order was placed in a region."""

    order_id: str
    region: str
    total: float


class Invalidate(BaseModel):
    """Drop a key from every instance's cache."""

    key: str


class Document(BaseModel):
    """A document to render."""

    doc_id: str
    title: str
