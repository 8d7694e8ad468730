"""RPC client: call the pricing service (``examples.rpc_pricing``) and show each outcome.

Start the service first (``burrowmq run examples.rpc_pricing:app``), then run
``python -m examples.rpc_client``. The broker is ``$BURROWMQ_URL`` (default: localhost).
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

from burrowmq import App, NoRoute, RemoteError
from examples.rpc_pricing import Quote, QuoteRequest


async def main() -> int:
    """Make a typed call, an untyped one, many at once, and three that fail; 0 if all went as expected."""
    async with App(name="pricing-client", rpc_timeout=5.0) as app:
        try:
            quote = await app.call(
                "pricing.quote", QuoteRequest(sku="tea", quantity=3, coupon="TENOFF"), returns=Quote
            )
        except NoRoute:
            print("nothing serves pricing: start it with `burrowmq run examples.rpc_pricing:app`")
            return 1
        print(f"quote: {quote.quantity} x {quote.sku} = {quote.total} {quote.currency}")

        usd = await app.call(
            "pricing.convert", {"amount": str(quote.total), "source": "EUR", "target": "USD"}
        )
        print(f"in dollars: {usd} USD")

        totals = await asyncio.gather(
            *(
                app.call("pricing.quote", QuoteRequest(sku="coffee", quantity=n), returns=Quote)
                for n in range(1, 51)
            )
        )
        assert [q.total for q in totals] == [Decimal("6.00") * n for n in range(1, 51)]
        print(f"50 concurrent quotes: {totals[0].total} .. {totals[-1].total}")

        failures = [
            ("pricing.quote", {"sku": "caviar", "quantity": 1}),  # the handler raises
            ("pricing.quote", {"sku": "tea", "quantity": 0}),  # fails validation
            ("pricing.refund", {}),  # the service has no such method
        ]
        for procedure, payload in failures:
            try:
                await app.call(procedure, payload)
            except RemoteError as exc:
                print(f"{procedure} -> {exc.type}: {exc.remote_message}")
            else:
                print(f"{procedure} unexpectedly succeeded")
                return 1
    print("rpc client: OK")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
