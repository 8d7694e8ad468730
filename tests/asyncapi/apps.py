"""An App that uses every part of an AsyncAPI document, on examples/topology.yaml.

RPC (the pricing example), a per-instance fanout queue, a YAML queue consumed with
retries long enough for broker delay tiers, a headers binding, routing-key parameters,
text and bytes payloads, nested models and a cluster URL with a password.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from tenacity import wait_exponential

from burrowmq import App, Retry, Router
from examples import fanout, rpc_pricing

TOPOLOGY = Path(__file__).resolve().parents[2] / "examples" / "topology.yaml"
PASSWORD = "s3cret-pa55"


class Line(BaseModel):
    """One line of a report."""

    label: str
    values: tuple[int, float]


class ReportRequest(BaseModel):
    """A report to generate."""

    report: str
    lines: list[Line] = []
    parent: ReportRequest | None = None


router = Router()
router.include_router(rpc_pricing.router)
router.include_router(fanout.router)


@router.consume("reports.generate", retry=Retry(attempts=5, wait=wait_exponential(max=30)))
async def report(req: ReportRequest) -> None:
    """Generate a report."""


@router.headers("docs", {"archive": True}, match="any", queue="docs.render")
async def render(doc: bytes) -> None:
    """Render a raw document."""


@router.topic("logs", "logs.{level}.#", queue="logs.all")
async def logs(line: str, level: str) -> None:
    """Keep a log line."""


@router.direct("batches", "batch")
async def batch(lines: list[Line]) -> None:
    """Take a batch of lines."""


app = App(
    [router],
    name="reports",
    url=[f"amqp://bob:{PASSWORD}@rabbit-1:5672/shop", f"amqps://bob:{PASSWORD}@rabbit-2/shop"],
    topology=TOPOLOGY,
)
