"""`/admin`: agents, teams, canned responses, the SLA policies and calendars in force, channel status.

Admins change things; leads see everything read-only; plain agents get 403. Every change goes
through `router.core.actions.admin`, which checks the permission itself. Which settings belong to
router.toml and which to this UI: `router.core.actions.admin` and README "Config file or admin UI".
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from agents import store as agent_store
from router.core.store import canned, channel_status
from router.web.http import services
from router.web.inbox.admin import agents, canned_pages, channels, kb, policies, teams
from router.web.inbox.admin import translations as translations  # registers the Japanese of these pages
from router.web.inbox.admin.common import page, viewer


async def overview(request: Request) -> Response:
    """Each section with the figure that says whether it needs a look."""
    agent = await viewer(request)
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        directory = await agent_store.directory(conn)
        team_rows = await agent_store.teams(conn)
        added = await canned.list_all(conn)
        backlog = await channel_status.outbox_backlog(conn)
    return page(request, agent, "admin.html", "/admin", {
        "active_agents": sum(1 for row in directory if row["active"]),
        "inactive_agents": sum(1 for row in directory if not row["active"]),
        "online_agents": sum(1 for row in directory if row["active"] and row["status"] == "online"),
        "team_count": len(team_rows),
        "canned_count": len(added) + len(svc.config.canned),
        "policy_count": len(svc.config.sla_policies),
        "calendar_count": len(svc.config.calendars),
        "waiting": sum(b.pending + b.sending for b in backlog.values()),
        "dead": sum(b.dead for b in backlog.values()),
    })


routes: list[BaseRoute] = [
    Route("/admin", overview, methods=["GET"]),
    *agents.routes,
    *teams.routes,
    *canned_pages.routes,
    *policies.routes,
    *channels.routes,
    *kb.routes,
]
