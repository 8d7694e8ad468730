"""RouteRegistry: the routes and schedules of a router, and the rules for adding them.

The base of :class:`~burrowmq.routing.router.Router`: it holds the router's settings
(prefix, retry, prefetch, concurrency), applies them to every route added, and refuses
an addition that would be lost (an App serving the routes is running, or they were
copied into another router). The decorators build on :meth:`RouteRegistry.add_route`.
"""

from __future__ import annotations

from burrowmq.exceptions import ConfigurationError
from burrowmq.routing.retry import Retry
from burrowmq.routing.route import Route
from burrowmq.routing.schedule import Schedule

__all__ = ["RouteRegistry"]


class RouteRegistry:
    """An ordered collection of routes and schedules, with a router's settings.

    See :class:`~burrowmq.routing.router.Router` for the settings.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        retry: Retry | None = None,
        prefetch: int | None = None,
        concurrency: int | None = None,
    ) -> None:
        self._prefix = prefix
        self._retry = retry
        self._prefetch = prefetch
        self._concurrency = concurrency
        self._routes: list[Route] = []
        self._schedules: list[Schedule] = []
        self._running_apps = 0  # Apps that read these routes when they started
        self._included_in: list[RouteRegistry] = []  # routers that copied these routes

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes, in the order they were added."""
        return tuple(self._routes)

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        """The schedules, in the order they were added."""
        return tuple(self._schedules)

    def add_schedule(self, schedule: Schedule) -> None:
        """Add a schedule (the primitive :meth:`schedule` uses).

        Raises:
            ConfigurationError: not a Schedule, one of that name is here already, or a
                schedule added now would be lost (as for :meth:`add_route`).
        """
        if not isinstance(schedule, Schedule):
            raise ConfigurationError(f"add_schedule() takes a Schedule, got {schedule!r}")
        if (reason := self._why_closed()) is not None:
            raise ConfigurationError(f"cannot add the schedule {schedule.name}: {reason}")
        if any(s.name == schedule.name for s in self._schedules):
            raise ConfigurationError(f"two schedules are named {schedule.name!r}; pass name=")
        self._schedules.append(schedule)

    def _serving(self, delta: int) -> None:
        """Count an App that started (``+1``) or stopped (``-1``) serving these routes.

        While one runs, :meth:`add_route` refuses: the App read the routes when it
        started, and a route added now would never be consumed. Called by the App only.
        """
        self._running_apps = max(0, self._running_apps + delta)

    def _why_closed(self) -> str | None:
        """Why a route added now would be silently lost, or ``None`` if it would not."""
        if self._running_apps:
            return (
                "an App serving this router is running, and it read the router's routes "
                "when it started; add every route before the App starts"
            )
        if self._included_in:
            return (
                "this router was included into another with include_router(), which "
                "copied the routes it had then; add every route before including it"
            )
        return None

    def add_route(self, route: Route) -> None:
        """Add a route (the primitive every decorator uses), with this router's settings.

        The router's prefix goes before the route's declared queue name, and its retry,
        prefetch and concurrency fill in what the route does not set.

        Raises:
            ConfigurationError: ``route`` is not a Route; or a route added now would be
                lost: an App serving this router is running (it read the routes when it
                started), or this router was included into another (which copied them).
        """
        if not isinstance(route, Route):
            raise ConfigurationError(f"add_route() takes a Route, got {route!r}")
        if (reason := self._why_closed()) is not None:
            raise ConfigurationError(f"cannot add the route of {route.name}: {reason}")
        self._routes.append(
            route.with_defaults(
                retry=self._retry, prefetch=self._prefetch, concurrency=self._concurrency
            ).with_prefix(self._prefix)
        )
