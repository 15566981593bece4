"""`/api/v1/agents…`: the team's agents; status and profile edits."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agents import store as agent_store
from router.core.actions import agents as agent_actions
from router.core.inbound import text_value
from router.web.api.auth import authenticate
from router.web.http import db_id, read_json_object, services


async def list_agents(request: Request) -> Response:
    await authenticate(request)
    async with services(request).require_pool().acquire() as conn:
        rows = await agent_store.list_all(conn)
    return JSONResponse({"agents": [agent_store.agent_json(r) for r in rows]})


def _agent_key(value: str) -> str:
    """An agent path segment: a numeric id (in range) or an email address."""
    if value.isascii() and value.isdigit():
        return str(db_id(value, "id"))
    return text_value(value, "id", limit=320, required=True) or ""


async def patch_agent(request: Request) -> Response:
    actor = await authenticate(request)
    body = await read_json_object(request)
    key = _agent_key(request.path_params["id"])
    agent_id = await agent_actions.update_agent(services(request).actions(), actor, key, body)
    async with services(request).require_pool().acquire() as conn:
        row = await agent_store.find(conn, str(agent_id))
    return JSONResponse(agent_store.agent_json(row))
