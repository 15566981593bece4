"""`/admin/teams`: the teams, with their members; create and rename (teams router.toml names are
renamed there: its topics and agents refer to them by name)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents import store as agent_store
from router.core.actions import admin as admin_actions
from router.core.errors import Conflict, InvalidInput
from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.admin.common import done, editor, field, page, path_id, viewer

SECTION = "/admin/teams"


async def _teams_page(request: Request, agent: SignedIn, *, error: str | None = None, error_team: int | None = None,
                      typed: str = "", status: int = 200) -> Response:
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        teams = await agent_store.teams(conn)
    return page(request, agent, "admin_teams.html", SECTION, {
        "teams": teams, "config_teams": admin_actions.config_team_names(svc.actions()),
        "config_source": svc.config.source, "error": error, "error_team": error_team, "typed": typed,
    }, status=status)


async def teams_page(request: Request) -> Response:
    return await _teams_page(request, await viewer(request))


async def create_team(request: Request) -> Response:
    agent, form = await editor(request)
    try:
        await admin_actions.create_team(services(request).actions(), agent.identity, field(form, "name"))
    except (InvalidInput, Conflict) as exc:
        return await _teams_page(request, agent, error=exc.detail, typed=field(form, "name"), status=exc.status)
    return done(SECTION, "team-created")


async def rename_team(request: Request) -> Response:
    agent, form = await editor(request)
    team_id = path_id(request, "team_id")
    try:
        await admin_actions.rename_team(services(request).actions(), agent.identity, team_id, field(form, "name"))
    except (InvalidInput, Conflict) as exc:
        return await _teams_page(request, agent, error=exc.detail, error_team=team_id, typed=field(form, "name"),
                                 status=exc.status)
    return done(SECTION, "team-renamed")


routes = [
    Route("/admin/teams", teams_page, methods=["GET"]),
    Route("/admin/teams", create_team, methods=["POST"]),
    Route("/admin/teams/{team_id:int}", rename_team, methods=["POST"]),
]
