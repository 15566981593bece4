"""`/admin/agents`: the agent directory, creating and editing agents, deactivation, passwords.

A form that cannot be saved comes back with what was typed and the reason (422 or 409), never a
bare error page, so an admin does not type it all again.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents import store as agent_store
from agents.store import Profile
from router.core.actions import admin as admin_actions
from router.core.errors import Conflict, InvalidInput, NotFound
from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.admin.common import done, editor, field, optional_id, page, path_id, viewer, whole_number, words

SECTION = "/admin/agents"


def _profile(form: FormData) -> Profile:
    return Profile(
        name=field(form, "name"),
        team_id=optional_id(form, "team_id", "Team"),
        role=admin_actions.agent_role(field(form, "role")),
        skills=tuple(words(field(form, "skills"))),
        languages=tuple(words(field(form, "languages"))),
        capacity=whole_number(form, "capacity", "Capacity"),
        chat_capacity=whole_number(form, "chat_capacity", "Chat capacity"),
    )


def _values_of(row: Any) -> dict[str, Any]:
    return {"email": row["email"], "name": row["name"], "team_id": row["team_id"], "role": row["role"],
            "skills": ", ".join(row["skills"]), "languages": ", ".join(row["languages"]),
            "capacity": row["capacity"], "chat_capacity": row["chat_capacity"]}


def _values_typed(form: FormData) -> dict[str, Any]:
    team = field(form, "team_id").strip()
    return {"email": field(form, "email"), "name": field(form, "name"),
            "team_id": int(team) if team.isascii() and team.isdigit() else None, "role": field(form, "role"),
            "skills": field(form, "skills"), "languages": field(form, "languages"),
            "capacity": field(form, "capacity"), "chat_capacity": field(form, "chat_capacity")}


async def _form_page(request: Request, agent: SignedIn, target: Any, values: dict[str, Any], *,
                     error: str | None = None, password_error: str | None = None, status: int = 200) -> Response:
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        teams = await agent_store.teams(conn)
    config = svc.config
    in_config = target is not None and any(a.email == target["email"] for a in config.agents)
    skills = sorted({t.skill for t in config.topics if t.skill})
    return page(request, agent, "admin_agent.html", SECTION, {
        "target": target, "values": values, "teams": teams, "in_config": in_config, "topic_skills": skills,
        "config_source": config.source, "error": error, "password_error": password_error,
        "password_min": admin_actions.PASSWORD_MIN,
    }, status=status)


async def _target(request: Request, agent_id: int) -> Any:
    async with services(request).require_pool().acquire() as conn:
        row = await agent_store.directory_entry(conn, agent_id)
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    return row


async def agents_page(request: Request) -> Response:
    agent = await viewer(request)
    async with services(request).require_pool().acquire() as conn:
        rows = await agent_store.directory(conn)
    config = services(request).config
    return page(request, agent, "admin_agents.html", SECTION, {
        "agents": rows, "config_emails": {a.email for a in config.agents}, "config_source": config.source})


async def new_agent_page(request: Request) -> Response:
    agent = await viewer(request)
    values = {"email": "", "name": "", "team_id": None, "role": "agent", "skills": "", "languages": "",
              "capacity": 5, "chat_capacity": 3}
    return await _form_page(request, agent, None, values)


async def create_agent(request: Request) -> Response:
    agent, form = await editor(request)
    try:
        agent_id = await admin_actions.create_agent(services(request).actions(), agent.identity,
                                                    field(form, "email"), _profile(form), field(form, "password"))
    except (InvalidInput, Conflict) as exc:
        return await _form_page(request, agent, None, _values_typed(form), error=exc.detail, status=exc.status)
    return done(f"/admin/agents/{agent_id}", "agent-created")


async def agent_page(request: Request) -> Response:
    agent = await viewer(request)
    target = await _target(request, path_id(request, "agent_id"))
    return await _form_page(request, agent, target, _values_of(target))


async def save_agent(request: Request) -> Response:
    agent, form = await editor(request)
    agent_id = path_id(request, "agent_id")
    try:
        await admin_actions.edit_agent(services(request).actions(), agent.identity, agent_id, _profile(form))
    except (InvalidInput, Conflict) as exc:
        target = await _target(request, agent_id)
        values = {**_values_typed(form), "email": target["email"]}
        return await _form_page(request, agent, target, values, error=exc.detail, status=exc.status)
    return done(f"/admin/agents/{agent_id}", "agent-saved")


async def hand_back(request: Request) -> Response:
    agent, _ = await editor(request)
    agent_id = path_id(request, "agent_id")
    await admin_actions.hand_back_to_config(services(request).actions(), agent.identity, agent_id)
    return done(f"/admin/agents/{agent_id}", "agent-handed-back")


async def deactivate(request: Request) -> Response:
    agent, _ = await editor(request)
    agent_id = path_id(request, "agent_id")
    await admin_actions.deactivate_agent(services(request).actions(), agent.identity, agent_id)
    return done(f"/admin/agents/{agent_id}", "agent-deactivated")


async def reactivate(request: Request) -> Response:
    agent, _ = await editor(request)
    agent_id = path_id(request, "agent_id")
    await admin_actions.reactivate_agent(services(request).actions(), agent.identity, agent_id)
    return done(f"/admin/agents/{agent_id}", "agent-reactivated")


async def reset_password(request: Request) -> Response:
    agent, form = await editor(request)
    agent_id = path_id(request, "agent_id")
    try:
        await admin_actions.reset_password(services(request).actions(), agent.identity, agent_id,
                                           field(form, "password"))
    except InvalidInput as exc:
        target = await _target(request, agent_id)
        return await _form_page(request, agent, target, _values_of(target), password_error=exc.detail,
                                status=exc.status)
    return done(f"/admin/agents/{agent_id}", "password-reset")


routes = [
    Route("/admin/agents", agents_page, methods=["GET"]),
    Route("/admin/agents", create_agent, methods=["POST"]),
    Route("/admin/agents/new", new_agent_page, methods=["GET"]),
    Route("/admin/agents/{agent_id:int}", agent_page, methods=["GET"]),
    Route("/admin/agents/{agent_id:int}", save_agent, methods=["POST"]),
    Route("/admin/agents/{agent_id:int}/hand-back", hand_back, methods=["POST"]),
    Route("/admin/agents/{agent_id:int}/deactivate", deactivate, methods=["POST"]),
    Route("/admin/agents/{agent_id:int}/reactivate", reactivate, methods=["POST"]),
    Route("/admin/agents/{agent_id:int}/password", reset_password, methods=["POST"]),
]
