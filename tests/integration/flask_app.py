"""A Flask app that publishes and calls through one shared ``burrowmq.sync.Client``.

The sync client's tests serve it with a real WSGI server (waitress, 8 threads), as a
Flask or Django site would run in production.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from pydantic import BaseModel

from burrowmq import BurrowError
from burrowmq.sync import Client


class Price(BaseModel):
    """The reply of the pricing service."""

    sku: str
    total: float


def create_app(client: Client, *, exchange: str, service: str) -> Flask:
    """A site whose ``/orders/<n>`` publishes an event and ``/quote/<sku>`` calls for a price."""
    app = Flask(__name__)

    @app.post("/orders/<int:n>")
    def place(n: int) -> Any:
        message_id = client.publish(exchange, {"n": n}, routing_key="order.eu.placed", timeout=10)
        return jsonify(message_id=message_id)

    @app.get("/quote/<sku>")
    def quote(sku: str) -> Any:
        price = client.call(f"{service}.quote", {"sku": sku}, returns=Price, timeout=10)
        return jsonify(price.model_dump())

    @app.errorhandler(BurrowError)
    def failed(exc: BurrowError) -> Any:
        return jsonify(error=type(exc).__name__, message=str(exc)), 502

    return app
