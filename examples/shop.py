"""A shop combining every pattern: one App serving billing, audit, cache and rendering.

Each example module keeps its own router; this App includes them all. Run it with
``burrowmq run examples.shop:app``.
"""

from __future__ import annotations

from burrowmq import App, Router
from examples import direct, fanout, headers, topic

router = Router()
router.include_router(direct.router)
router.include_router(topic.router)
router.include_router(fanout.router)
router.include_router(headers.router)

app = App([router], name="shop")
