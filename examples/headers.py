"""Headers exchange: route on header values (``match="all"`` or ``"any"``).

Run it: ``burrowmq run examples.headers:app``.
"""

from __future__ import annotations

import structlog

from burrowmq import App, Router
from examples.models import Document

router = Router()
log = structlog.get_logger("examples.render")
rendered: list[tuple[str, str]] = []


@router.headers("docs", {"format": "pdf", "lang": "en"}, match="all", queue="render.pdf")
async def render_pdf(doc: Document) -> None:
    """Render English PDFs."""
    rendered.append(("pdf", doc.doc_id))
    log.info("rendered_pdf", doc_id=doc.doc_id)


@router.headers("docs", {"urgent": True, "vip": True}, match="any", queue="render.priority")
async def render_priority(doc: Document) -> None:
    """Fast-track urgent or VIP documents, whatever their format."""
    rendered.append(("priority", doc.doc_id))
    log.info("rendered_priority", doc_id=doc.doc_id)


app = App([router], name="render")
