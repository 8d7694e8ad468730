"""The pytest plugin: its fixtures run a user's app on the memory broker."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit
pytest_plugins = ["pytester"]

# Blocks the entry point (once installed) so that the module loads exactly once.
PLUGIN = (
    *("-p", "no:burrowmq", "-p", "burrowmq.pytest_plugin", "-p", "no:cacheprovider"),
    *("-o", "asyncio_default_fixture_loop_scope=function"),
)

USER_TEST = """
import pytest
from burrowmq import App, Router

router = Router()
seen = []

@router.direct("orders", "new", queue="orders.new")
async def handle(body: dict) -> None:
    seen.append(body)

@pytest.fixture
def burrowmq_app():
    return App([router])

@pytest.mark.asyncio
async def test_handled(burrowmq_client, burrowmq_transport):
    await burrowmq_client.publish_and_wait("orders", {"id": 1}, routing_key="new")
    assert seen == [{"id": 1}]
    assert burrowmq_transport.broker is burrowmq_client.broker
"""


class TestFixtures:
    """The plugin's fixtures as a user's test suite sees them."""

    def test_client_runs_the_overridden_app(self, pytester: pytest.Pytester) -> None:
        """burrowmq_client runs the app burrowmq_app returns, on a broker of the test's own."""
        pytester.makepyfile(test_user=USER_TEST)
        result = pytester.runpytest_inprocess(*PLUGIN)
        result.assert_outcomes(passed=1)

    def test_missing_app_says_what_to_do(self, pytester: pytest.Pytester) -> None:
        """Without a burrowmq_app fixture, the client fixture explains how to provide one."""
        pytester.makepyfile(
            test_user="""
import pytest

@pytest.mark.asyncio
async def test_needs_app(burrowmq_client):
    pass
"""
        )
        result = pytester.runpytest_inprocess(*PLUGIN)
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*define a fixture named burrowmq_app*"])
