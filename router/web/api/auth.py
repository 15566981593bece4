"""Who is calling the agents' API: an agent token, the integration token, or an inbox session."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from agents import store as agent_store
from agents.store import AgentIdentity
from router.core.errors import Unauthorized
from router.web.http import bearer_token, services

INTEGRATION = AgentIdentity(None, "integration", "admin")


async def authenticate(request: Request) -> AgentIdentity:
    """Bearer agent token, the integration token (admin rights), or the inbox session cookie."""
    svc = services(request)
    token = bearer_token(request)
    if token is not None:
        api_token = svc.config.settings.api_token
        if api_token and hmac.compare_digest(token.encode(), api_token.encode()):
            return INTEGRATION
        async with svc.require_pool().acquire() as conn:
            agent = await agent_store.by_token(conn, token)
        if agent is not None:
            return agent
        raise Unauthorized("the bearer token is not valid")
    agent_id = request.session.get("agent_id") if "session" in request.scope else None
    if isinstance(agent_id, int):
        async with svc.require_pool().acquire() as conn:
            agent = await agent_store.by_id(conn, agent_id)
        if agent is not None:
            return agent
    raise Unauthorized("sign in, or send `Authorization: Bearer <agent token>`")
